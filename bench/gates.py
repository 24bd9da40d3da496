"""Throughput and latency of the deployment gate API under concurrent clients, next to
the floor: a constant JSON answer behind the same token authentication.

    python bench/gates.py [--requests 3000] [--concurrency 8] [--workers 2]

What it does, in order:

1. Drops and creates its own PostgreSQL database (`--database`, default portal_bench)
   on the server DATABASE_URL points at (only the server and credentials are taken
   from it; its own database is never touched), migrates it, and seeds it through the
   services: the demo users and registry, demand-forecasting 2.1.0 approved for
   staging, canary and production by the three board members, product-recommendation
   2.2.0 waiting for two of them, and a CI token with the scope gates:read.
2. Counts the SQL queries of one request to each endpoint, in process.
3. Starts gunicorn (sync workers, production settings: DJANGO_DEBUG=false, a generated
   SECRET_KEY and Ed25519 attestation key) on a free loopback port, with
   DJANGO_SETTINGS_MODULE=bench.bench_settings, which adds the floor endpoint.
4. Sends each endpoint its requests from `--concurrency` client processes at once (one
   requests.Session each), in `--rounds` rounds interleaved across the endpoints, and
   prints requests/s, p50/p99 latency and the ratios to the floor.
5. When Debian's `wrk` is on the PATH (a compiled load generator, so the clients take
   less of the shared CPUs), measures each endpoint again with it (`--wrk-threads`,
   `--wrk-connections`, `--wrk-seconds` per round, the same interleaved rounds) and
   prints its table; then stops gunicorn and drops the database (unless
   --keep-database).

Clients and server share the machine's CPUs, so absolute figures are the machine's;
the ratios to the floor are the point. Each endpoint's run stops after --max-seconds
whatever the count, and the whole run after seven minutes.
"""

import argparse
import io
import json
import logging
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess  # nosec B404  # starts gunicorn with a fixed argument list
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Run as a script, this file's folder comes first on sys.path: put the project root
# there instead, so `portal`, `governance` and `bench` import as packages.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
OVERALL_SECONDS = 420
APPROVED = ("demand-forecasting", "2.1.0")
PENDING = ("product-recommendation", "2.2.0")


class BenchFailed(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise BenchFailed(f"the benchmark ran past its {OVERALL_SECONDS}s bound")


# --- the database ------------------------------------------------------------------------


def _database_urls(name: str) -> tuple[str, str]:
    """(maintenance URL, benchmark database URL) on the server of DATABASE_URL."""
    server = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    parts = urlsplit(server)
    if parts.scheme not in ("postgres", "postgresql", "pgsql", "psql"):
        raise BenchFailed(f"DATABASE_URL must point at PostgreSQL, not {parts.scheme!r}")
    return (
        urlunsplit(parts._replace(scheme="postgresql", path="/postgres", query="")),
        urlunsplit(parts._replace(path=f"/{name}")),
    )


def _database_recreate(maintenance_url: str, name: str, *, create: bool = True) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        # FORCE ends sessions a crashed earlier run left behind.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _signing_keys() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return json.dumps([{"kid": "bench-1", "pem": pem}])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_environment(database_url: str, port: int, var_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "ATTESTATION_SIGNING_KEYS": _signing_keys(),
        "SECURE_SSL_REDIRECT": "false",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
        "PORTAL_VAR_DIR": var_dir,
        "LOG_LEVEL": "warning",
    }


# --- seeding, through the services ---------------------------------------------------------


def _seed() -> str:
    """The demo registry and people, one version approved for production and one still
    waiting; returns the secret of a CI token with gates:read."""
    from django.core.management import call_command

    from governance.choices import Target
    from governance.models import ModelVersion
    from governance.reviews.choices import ReviewSource, ReviewState, Verdict
    from governance.reviews.services import review_decide, review_open
    from governance.services.cards import card_section_confirm
    from portal.accounts.choices import Role
    from portal.accounts.models import User
    from portal.accounts.services import role_grant, user_create
    from portal.apitokens.choices import Scope
    from portal.apitokens.services import apitoken_create
    from portal.audit.actors import Actor

    call_command("migrate", verbosity=0, interactive=False)
    call_command("demo_users", stdout=io.StringIO())
    call_command("demo_registry", stdout=io.StringIO())
    actor = Actor.system("bench")
    people = {
        role: User.objects.get(email=email)
        for role, email in (
            (Role.DATA_SCIENCE_LEAD, "dsl@zeromargin.example"),
            (Role.PRIVACY_OFFICER, "privacy@zeromargin.example"),
            (Role.DEVOPS, "devops@zeromargin.example"),
        )
    }
    owner = User.objects.get(email="owner@zeromargin.example")

    def approve(version: ModelVersion, target: str, roles: list[str]) -> str:
        review, _ = review_open(
            version=version,
            target=target,
            requested_by_actor=owner.audit_actor(),
            source=ReviewSource.CI,
        )
        # The demo's registry has its board approve what it assigns to a target: only
        # the decisions still missing are made here.
        decided = set(
            review.decisions.filter(active=True, verdict=Verdict.APPROVE).values_list(
                "role", flat=True
            )
        )
        for role in roles:
            if review.state == ReviewState.APPROVED or role in decided:
                continue
            review = review_decide(
                review=review, reviewer=people[role], verdict=Verdict.APPROVE, role=role
            ).review
        return review.state

    board = [Role.DATA_SCIENCE_LEAD, Role.PRIVACY_OFFICER, Role.DEVOPS]
    for (slug, number), production_roles, wanted in (
        (APPROVED, board, ReviewState.APPROVED),
        (PENDING, [Role.DATA_SCIENCE_LEAD], ReviewState.PENDING),
    ):
        version = ModelVersion.objects.select_related("card").get(model__slug=slug, version=number)
        # The canary's card still carries sections inherited from the version before:
        # confirm them, as its owner would before asking for production.
        for key in version.card.sections.filter(inherited=True).values_list("key", flat=True):
            card_section_confirm(
                card=version.card,
                key=key,
                actor_user=people[Role.DATA_SCIENCE_LEAD],
                comment="Confirmed for this version (benchmark).",
            )
        approve(version, Target.STAGING, [Role.DATA_SCIENCE_LEAD])
        approve(version, Target.CANARY, [Role.DATA_SCIENCE_LEAD, Role.DEVOPS])
        state = approve(version, Target.PRODUCTION, production_roles)
        if state != wanted:
            raise BenchFailed(f"{slug} {number} for production is {state}, expected {wanted}")
    ci = user_create(email="ci-bench@zeromargin.example", full_name="CI", actor=actor, machine=True)
    # A token does only what its owner may: the CI account reads as an auditor does.
    role_grant(user=ci, role=Role.AUDITOR, granted_by=None)
    issued = apitoken_create(
        name="gate benchmark", owner=ci, scopes=[Scope.GATES_READ], expires_at=None, actor=actor
    )
    return issued.secret


def _gate_path(model: str, version: str) -> str:
    return f"/api/v1/gates/{model}/{version}/production"


ENDPOINTS = (
    ("gate, approved (200)", _gate_path(*APPROVED), 200),
    ("gate, pending (403)", _gate_path(*PENDING), 403),
    ("floor (constant JSON)", "/api/v1/bench/floor", 200),
)


def _queries_per_request(secret: str, show: bool) -> dict[str, int]:
    """SQL queries of one request to each endpoint, after one request that may write
    the token's last-used time (at most once a minute)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    # The pending gate's 403s would each log a warning here; the server still logs them.
    logging.getLogger("django.request").setLevel(logging.ERROR)

    client = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {secret}")
    counts = {}
    for name, path, expected in ENDPOINTS:
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        if response.status_code != expected:
            raise BenchFailed(f"{path}: {response.status_code} in process, expected {expected}")
        counts[name] = len(queries)
        if show:
            print(f"\n{name}: {len(queries)} queries", file=sys.stderr)
            for query in queries.captured_queries:
                print(f"  {query['sql'][:220]}", file=sys.stderr)
    return counts


# --- the server ----------------------------------------------------------------------------


def _gunicorn_start(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # The virtualenv's own gunicorn, arguments built here, no shell.
    return subprocess.Popen(  # nosec B603
        [
            str(gunicorn),
            "portal.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--error-logfile",
            str(log),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def _gunicorn_stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=5)


def _wait_until_up(base: str, headers: dict[str, str], server: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchFailed(f"gunicorn exited ({server.returncode}):\n{log.read_text()[-2000:]}")
        try:
            if requests.get(f"{base}/api/v1/bench/floor", headers=headers, timeout=5).ok:
                return
        except requests.RequestException:
            pass  # not listening yet, or a worker still loading the application
        time.sleep(0.2)
    raise BenchFailed(f"gunicorn did not answer within 30s:\n{log.read_text()[-2000:]}")


# --- the clients ---------------------------------------------------------------------------


def _client_init() -> None:
    import requests  # noqa: F401  (imported once per client process, before timing)


def _client_ready(_: int) -> int:
    time.sleep(0.2)  # long enough that every process of the pool takes one
    return os.getpid()


def _client_run(job: tuple[str, dict[str, str], int, int, float, float]) -> tuple:
    """One client: `count` requests one after another, from `start_at` (a shared
    monotonic instant) until done or `stop_at`; returns latencies and unexpected
    answers."""
    import requests

    url, headers, count, expected, start_at, stop_at = job
    session = requests.Session()
    session.headers.update(headers)
    latencies: list[float] = []
    unexpected = 0
    while time.monotonic() < start_at:
        time.sleep(0.001)
    for _ in range(count):
        began = time.monotonic()
        if began >= stop_at:
            break
        response = session.get(url, timeout=30)
        response.content  # noqa: B018  (read the whole body)
        latencies.append(time.monotonic() - began)
        if response.status_code != expected:
            unexpected += 1
    session.close()
    return latencies, unexpected, time.monotonic()


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _run_round(
    pool: object,
    url: str,
    headers: dict[str, str],
    *,
    count: int,
    concurrency: int,
    expected: int,
    max_seconds: float,
) -> tuple[list[float], int, float]:
    """`count` requests from `concurrency` clients at once: (latencies, unexpected
    answers, elapsed seconds)."""
    share, extra = divmod(count, concurrency)
    start_at = time.monotonic() + 0.3
    jobs = [
        (url, headers, share + (1 if i < extra else 0), expected, start_at, start_at + max_seconds)
        for i in range(concurrency)
    ]
    results = pool.map(_client_run, jobs)
    latencies = [x for result in results for x in result[0]]
    elapsed = max(result[2] for result in results) - start_at
    return latencies, sum(result[1] for result in results), elapsed


def _measure_all(
    pool: object,
    base: str,
    headers: dict[str, str],
    *,
    requests_total: int,
    concurrency: int,
    rounds: int,
    max_seconds: float,
) -> list[dict]:
    """Every endpoint in `rounds` interleaved rounds, so a change in the machine's other
    load during the run weighs on each endpoint alike."""
    totals = {name: ([], 0, 0.0) for name, _path, _expected in ENDPOINTS}
    per_round, extra = divmod(requests_total, rounds)
    for number in range(rounds):
        for name, path, expected in ENDPOINTS:
            latencies, unexpected, elapsed = _run_round(
                pool,
                f"{base}{path}",
                headers,
                count=per_round + (1 if number < extra else 0),
                concurrency=concurrency,
                expected=expected,
                max_seconds=max_seconds / rounds,
            )
            kept, bad, seconds = totals[name]
            totals[name] = (kept + latencies, bad + unexpected, seconds + elapsed)
        print(f"  round {number + 1} of {rounds} done", file=sys.stderr)
    rows = []
    for name, (latencies, unexpected, seconds) in totals.items():
        if not latencies:
            raise BenchFailed(f"{name}: no request completed")
        ordered = sorted(latencies)
        rows.append(
            {
                "name": name,
                "requests": len(ordered),
                "unexpected": unexpected,
                "rps": len(ordered) / seconds,
                "p50": _percentile(ordered, 50) * 1000,
                "p99": _percentile(ordered, 99) * 1000,
            }
        )
    return rows


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk_milliseconds(text: str) -> float:
    for unit in ("us", "ms", "s"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _WRK_UNITS[unit]
    raise BenchFailed(f"wrk printed a latency I cannot read: {text!r}")


def _wrk_run(wrk: str, url: str, secret: str, *, threads: int, connections: int, seconds: int):
    """(requests, seconds, p50 ms, p99 ms, non-2xx answers) of one wrk run."""
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {secret}",
        url,
    ]
    output = subprocess.run(  # nosec B603  # fixed argument list, wrk from the PATH
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    requests = elapsed = p50 = p99 = None
    non_2xx = 0
    for line in output.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "50%":
            p50 = _wrk_milliseconds(words[1])
        elif len(words) == 2 and words[0] == "99%":
            p99 = _wrk_milliseconds(words[1])
        elif "requests in" in line:
            requests = int(words[0])
            elapsed = float(words[3].rstrip("s,"))
        elif line.startswith("  Non-2xx or 3xx responses:"):
            non_2xx = int(words[-1])
    if None in (requests, elapsed, p50, p99):
        raise BenchFailed(f"wrk printed something I cannot read:\n{output}")
    return requests, elapsed, p50, p99, non_2xx


def _measure_wrk(wrk: str, base: str, secret: str, args: argparse.Namespace) -> list[dict]:
    """Every endpoint with wrk, in interleaved rounds; p50 and p99 are the rounds' medians."""
    runs: dict[str, list] = {name: [] for name, _path, _expected in ENDPOINTS}
    for number in range(args.rounds):
        for name, path, _expected in ENDPOINTS:
            runs[name].append(
                _wrk_run(
                    wrk,
                    f"{base}{path}",
                    secret,
                    threads=args.wrk_threads,
                    connections=args.wrk_connections,
                    seconds=args.wrk_seconds,
                )
            )
        print(f"  wrk round {number + 1} of {args.rounds} done", file=sys.stderr)
    rows = []
    for name, _path, expected in ENDPOINTS:
        requests = sum(run[0] for run in runs[name])
        non_2xx = sum(run[4] for run in runs[name])
        rows.append(
            {
                "name": name,
                "requests": requests,
                # wrk counts statuses only as 2xx or not: a 403 endpoint must have no 2xx.
                "unexpected": (requests - non_2xx) if expected >= 300 else non_2xx,
                "rps": requests / sum(run[1] for run in runs[name]),
                "p50": sorted(run[2] for run in runs[name])[len(runs[name]) // 2],
                "p99": sorted(run[3] for run in runs[name])[len(runs[name]) // 2],
            }
        )
    return rows


def _warm_up(base: str, headers: dict[str, str], rounds: int) -> None:
    import requests

    with requests.Session() as session:
        session.headers.update(headers)
        for _ in range(rounds):
            for _name, path, _expected in ENDPOINTS:
                session.get(f"{base}{path}", timeout=10).content  # noqa: B018


def _table(rows: list[dict], concurrency: int, queries: dict[str, int]) -> str:
    floor = rows[-1]
    header = (
        f"{'endpoint':<24} {'requests':>8} {'conc.':>5} {'req/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'req/s vs floor':>14} {'p50 vs floor':>12} {'p99 vs floor':>12} "
        f"{'queries':>7} {'bad':>4}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['name']:<24} {row['requests']:>8} {concurrency:>5} {row['rps']:>8.1f} "
            f"{row['p50']:>7.2f} {row['p99']:>7.2f} {row['rps'] / floor['rps']:>14.2f} "
            f"{row['p50'] / floor['p50']:>11.2f}x {row['p99'] / floor['p99']:>11.2f}x "
            f"{queries[row['name']]:>7} {row['unexpected']:>4}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="per endpoint")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved, per endpoint")
    parser.add_argument("--database", default="portal_bench", help="dropped and recreated")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--show-queries", action="store_true", help="print each query's SQL")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--wrk-seconds", type=int, default=5, help="per endpoint and round")
    parser.add_argument("--no-wrk", action="store_true", help="only the Python clients")
    args = parser.parse_args()
    if min(args.requests, args.concurrency, args.workers, args.rounds) < 1:
        parser.error("--requests, --concurrency, --workers and --rounds must be at least 1")
    if not args.database.startswith("portal_bench"):
        parser.error("--database must start with portal_bench: it is dropped")

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(OVERALL_SECONDS)
    maintenance_url, database_url = _database_urls(args.database)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = None
    pool = None
    scratch = tempfile.TemporaryDirectory(prefix="gates-bench-")
    try:
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        _database_recreate(maintenance_url, args.database)
        # Whitenoise wants STATIC_ROOT to exist; the API endpoints serve no static file.
        (Path(scratch.name) / "staticfiles").mkdir()
        os.environ.update(_server_environment(database_url, port, scratch.name))
        import django

        django.setup()
        secret = _seed()
        queries = _queries_per_request(secret, args.show_queries)
        from django.db import connections

        connections.close_all()
        print(f"database ready in {time.monotonic() - started:.1f}s", file=sys.stderr)

        headers = {"Authorization": f"Bearer {secret}"}
        log = Path(scratch.name) / "gunicorn.log"
        server = _gunicorn_start(dict(os.environ), port, args.workers, log)
        _wait_until_up(base, headers, server, log)
        _warm_up(base, headers, rounds=4 * args.workers)
        pool = multiprocessing.get_context("spawn").Pool(args.concurrency, initializer=_client_init)
        pool.map(_client_ready, range(args.concurrency), chunksize=1)
        rows = _measure_all(
            pool,
            base,
            headers,
            requests_total=args.requests,
            concurrency=args.concurrency,
            rounds=args.rounds,
            max_seconds=args.max_seconds,
        )
        print(
            f"\ngunicorn {args.workers} sync workers, {args.concurrency} client processes, "
            f"loopback, PostgreSQL; {os.cpu_count()} CPUs shared by clients and server "
            f"(load average before the run {load_before:.2f})"
        )
        print(_table(rows, args.concurrency, queries))
        wrk = None if args.no_wrk else shutil.which("wrk")
        if wrk:
            pool.terminate()
            pool.join()
            pool = None
            load_before_wrk = os.getloadavg()[0]
            wrk_rows = _measure_wrk(wrk, base, secret, args)
            print(
                f"\nwrk, {args.wrk_threads} threads, {args.wrk_connections} connections, "
                f"{args.wrk_seconds}s x {args.rounds} rounds per endpoint, same server "
                f"(load average before wrk {load_before_wrk:.2f}, after {os.getloadavg()[0]:.2f})"
            )
            print(_table(wrk_rows, args.wrk_connections, queries))
            rows += wrk_rows
        else:
            print("\nwrk is not on the PATH: only the Python clients measured", file=sys.stderr)
        if any(row["unexpected"] for row in rows):
            print("some answers had an unexpected status (column 'bad')", file=sys.stderr)
            return 1
        return 0
    except BenchFailed as failed:
        print(f"gates benchmark: {failed}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if pool is not None:
            pool.terminate()
            pool.join()
        if server is not None:
            _gunicorn_stop(server)
        if not args.keep_database:
            # FORCE also ends this process's own connection, if one is still open.
            _database_recreate(maintenance_url, args.database, create=False)
        scratch.cleanup()


if __name__ == "__main__":
    sys.exit(main())

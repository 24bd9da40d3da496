"""Monitoring benchmarks: drift computation time, and a dashboard page against the
Prometheus queries it makes.

    python bench/monitoring.py [--samples 1000000] [--reference 200000] [--repeat 3]
                               [--page] [--page-repeat 15]

Drift: each method scores one feature: a reference sample (the training data) against
a serving sample of the given size, raw values for normed Wasserstein, 30 common bins
for PSI, Jensen-Shannon and KL; and the same from Prometheus-style histograms (the form
serving metrics arrive in). The best of `--repeat` runs is shown. Goal: all four under
2 s for 1M samples.

Page (`--page`, needs Debian's prometheus and promtool): 30 days of one model's series
at a 5-minute resolution (latency histogram and request counters per track, quality
and drift gauges) are written as OpenMetrics, made into blocks by `promtool tsdb
create-blocks-from openmetrics` and served by a real Prometheus. The floor is the
page's own `query_range` calls (the catalogue's by-track queries over 30 days at the
page's step) sent one after the other with requests; the page is the monitoring
dashboard rendered in process (a throwaway SQLite database, migrated, the demo users)
with the query cache off, so every render asks Prometheus. Medians of
`--page-repeat` runs. Goal: the page adds at most 30% over its queries.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page", action="store_true", help="also time the dashboard page")
    parser.add_argument("--page-repeat", type=int, default=15)
    parser.add_argument(
        "--page-data",
        type=Path,
        default=None,
        help="keep the backfilled blocks in this folder and reuse them next time "
        "(promtool makes one block per 2 h: the backfill takes minutes)",
    )
    parser.add_argument("--drift", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.drift:
        drift_bench(args)
    if args.page:
        page_bench(args)


def drift_bench(args: argparse.Namespace) -> None:

    import numpy as np

    from monitoring.choices import DriftMethod
    from monitoring.drift import histogram_drift, sample_drift

    rng = np.random.default_rng(0)
    reference = rng.normal(100, 15, args.reference)
    current = rng.normal(103, 15, args.samples)
    edges = np.linspace(0, 200, 41)
    centres = (edges[:-1] + edges[1:]) / 2
    print(f"{'method':<16}{'raw samples s':>16}{'histogram s':>14}{'value':>10}")
    total = 0.0
    for method in DriftMethod.values:
        best_raw = best_hist = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            score = sample_drift(reference=reference, current=current, method=method)
            best_raw = min(best_raw, time.perf_counter() - started)
            started = time.perf_counter()
            histogram_drift(
                centres=centres,
                reference_counts=np.histogram(reference, bins=edges)[0],
                current_counts=np.histogram(current, bins=edges)[0],
                method=method,
            )
            best_hist = min(best_hist, time.perf_counter() - started)
        total += best_raw
        print(f"{method:<16}{best_raw:>16.3f}{best_hist:>14.3f}{score.value:>10.4f}")
    print(f"all four methods on {args.samples:,} serving samples: {total:.3f} s (goal < 2 s)")


MODEL = "demand-forecasting"
STEP_SECONDS = 300
DAYS = 30
LE = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, "+Inf")


def openmetrics_month(path: Path, end: int) -> int:
    """30 days of one model's series at STEP_SECONDS, ending at `end` (unix seconds):
    the latency histogram's buckets and the request counters per track (counters grow
    by a steady rate with noise), quality and drift gauges. Returns the sample count."""
    import numpy as np

    rng = np.random.default_rng(0)
    times = np.arange(end - DAYS * 86_400, end, STEP_SECONDS)
    tracks = {"stable": "1.0.0", "canary": "1.1.0"}
    families: list[tuple[str, str, list[tuple[str, np.ndarray]]]] = []
    buckets, requests_ = [], []
    for track, version in tracks.items():
        base = f'model="{MODEL}",version="{version}",track="{track}"'
        rate = 8.0 if track == "stable" else 1.0
        per_step = rng.poisson(rate * STEP_SECONDS, len(times)).astype(float)
        total = np.cumsum(per_step)
        shares = np.linspace(0.05, 1.0, len(LE))
        for le, share in zip(LE, shares, strict=True):
            buckets.append((f'{{{base},le="{le}"}}', np.floor(total * share)))
        errors = np.cumsum(rng.poisson(0.01 * rate * STEP_SECONDS, len(times))).astype(float)
        requests_.append((f'{{{base},outcome="ok"}}', total - errors))
        requests_.append((f'{{{base},outcome="error"}}', errors))
    families.append(("serving_request_duration_seconds_bucket", "unknown", buckets))
    families.append(("serving_requests_total", "unknown", requests_))
    quality, drift = [], []
    for track, version in tracks.items():
        base = f'model="{MODEL}",version="{version}",track="{track}"'
        for metric, level in (("mae", 300.0), ("mape", 0.12), ("rmse", 420.0)):
            quality.append(
                (f'{{{base},metric="{metric}"}}', level * rng.uniform(0.9, 1.1, len(times)))
            )
        for feature in ("level_28", "discount"):
            drift.append(
                (f'{{{base},feature="{feature}",method="kl"}}', rng.uniform(0, 0.08, len(times)))
            )
    families.append(("portal_model_quality", "gauge", quality))
    families.append(("portal_model_drift", "gauge", drift))
    count = 0
    with path.open("w") as out:
        for name, kind, series in families:
            out.write(f"# TYPE {name} {kind}\n")
            for labels, values in series:
                out.writelines(
                    f"{name}{labels} {value:g} {t}\n"
                    for t, value in zip(times, values, strict=True)
                )
                count += len(values)
        out.write("# EOF\n")
    return count


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def page_bench(args: argparse.Namespace) -> None:
    import os
    import shutil
    import socket
    import subprocess  # nosec B404  # starts promtool and prometheus, fixed arguments
    import tempfile

    import requests

    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not (prometheus and promtool):
        print("page: needs prometheus and promtool on the PATH (apt-get install prometheus)")
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    data = args.page_data or workdir / "data"
    end = int(time.time()) // STEP_SECONDS * STEP_SECONDS
    if args.page_data and any(args.page_data.glob("01*")):
        print(f"page: reusing the blocks in {data}")
    else:
        started = time.perf_counter()
        samples = openmetrics_month(workdir / "month.om", end)
        subprocess.run(  # nosec B603  # fixed arguments
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(workdir / "month.om"),
             str(data)],
            check=True, capture_output=True,
        )  # fmt: skip
        took = time.perf_counter() - started
        print(f"page: {samples:,} samples over {DAYS} days backfilled in {took:.1f} s")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    server = subprocess.Popen(  # nosec B603  # fixed arguments
        [prometheus, f"--config.file={workdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=60d",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)  # waiting for the server to start
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "portal.settings",
                "PORTAL_VAR_DIR": str(workdir / "var"),
                "DATABASE_URL": f"sqlite:///{workdir / 'portal.sqlite3'}",
                "PROMETHEUS_URL": url,
                "PROMETHEUS_TIMEOUT_SECONDS": "30",
                "MONITORING_CACHE_SECONDS": "0",
                # Debug settings: production ones want collected static files and
                # HTTPS; the page's own work (queries, charts, template) is the same.
                "DJANGO_DEBUG": "true",
                "ALLOWED_HOSTS": "testserver",
                "SECRET_KEY": "bench-" + "x" * 60,
            }
        )
        import django

        django.setup()
        from django.core.management import call_command
        from django.test import Client
        from django.test.utils import setup_test_environment

        from governance.models import RegisteredModel
        from monitoring.dashboards import RANGES
        from monitoring.selectors import thresholds_for
        from portal.accounts.models import User

        setup_test_environment()
        call_command("migrate", verbosity=0)
        call_command("demo_users", stdout=open(os.devnull, "w"))  # noqa: SIM115
        client = Client()
        client.force_login(User.objects.get(email="dsl@zeromargin.example"))
        model = RegisteredModel.objects.get(slug=MODEL)
        span, step = RANGES["30d"]
        queries = [row.entry.query_by_track(model=MODEL) for row in thresholds_for(model=model)]
        start_s = (end - int(span.total_seconds())) // step * step
        end_s = end // step * step

        def floor_once() -> float:
            began = time.perf_counter()
            for query in queries:
                answer = requests.get(
                    f"{url}/api/v1/query_range",
                    params={"query": query, "start": start_s, "end": end_s, "step": step},
                    timeout=30,
                )
                body = answer.json()
                if body["status"] != "success" or not body["data"]["result"]:
                    raise RuntimeError(f"no data for {query}: {answer.text[:300]}")
            return time.perf_counter() - began

        def page_once() -> float:
            began = time.perf_counter()
            response = client.get(f"/monitoring/{MODEL}/?range=30d")
            elapsed = time.perf_counter() - began
            body = response.content.decode()
            if response.status_code != 200 or "cannot be reached" in body:
                raise RuntimeError(f"the page failed ({response.status_code})")
            return elapsed

        floor_once(), page_once()  # warm both paths (Prometheus's caches, templates)
        floors, pages = [], []
        for _ in range(args.page_repeat):  # interleaved, so both see the same machine
            floors.append(floor_once())
            pages.append(page_once())
        floor, page = _median(floors), _median(pages)
        print(f"{'30-day dashboard':<28}{'median s':>10}")
        print(f"{'raw query_range x' + str(len(queries)):<28}{floor:>10.3f}")
        print(f"{'page render':<28}{page:>10.3f}")
        print(f"page over its queries: {100 * (page - floor) / floor:+.0f}% (goal at most +30%)")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

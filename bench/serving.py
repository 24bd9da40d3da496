"""The model server against the floor: an in-process `predict` loop on the same inputs.

    python bench/serving.py [--requests 600] [--concurrency 4] [--rate 100] [--seconds 6]

What it does, in order:

1. Builds a small sample lake and trains the three models twice (stable 1.0.0 and
   canary 1.1.0) into a temporary folder (a few seconds).
2. Floor: loads each stable version in this process and times `predict` on the inputs
   it will send (p50/p99 per call, calls/s on one thread).
3. Starts the model server (`python -m serving`) on a free loopback port, sends each
   model `--requests` requests from `--concurrency` threads (one keep-alive session
   each) and prints req/s and p50/p99 next to the floor, and the p50 the server adds.
4. Sends `--rate` requests per second for `--seconds` to all three models while the
   canary's weight moves 10 -> 50 -> 100 -> 0, and counts the requests that failed.

Client and server share the machine's CPUs; the added p50 is the point (goal: at most
2 ms), and zero failed requests across the weight changes.
"""

import argparse
import os
import socket
import subprocess  # nosec B404  # starts the model server with a fixed argument list
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The floor runs with the server's native thread setting (serving/__main__.py).
os.environ["OMP_NUM_THREADS"] = os.environ.get("SERVING_THREADS", "1")

from pipelines.artifacts import load_artifact  # noqa: E402
from pipelines.sample_data import ensure_sample_snapshot  # noqa: E402
from pipelines.steps import run_pipeline  # noqa: E402
from serving.predictors import PREDICTORS, predictor_load  # noqa: E402
from serving.routing import routing_from_dict, routing_write  # noqa: E402

SLUGS = {
    "forecasting": "demand-forecasting",
    "segmentation": "customer-segmentation",
    "recommendation": "product-recommendation",
}
CANARY_PARAMS = {
    "forecasting": {"max_iter": 60},
    "segmentation": {"n_clusters": 3},
    "recommendation": {"n_neighbours": 5},
}


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _bodies(slug: str, categories: list[str], products: list[str], n: int) -> list[dict]:
    out = []
    for i in range(n):
        if slug == "demand-forecasting":
            out.append(
                {
                    "category_id": categories[i % len(categories)],
                    "store_id": f"S{i % 9}",
                    "start_date": "2025-03-03",
                    "weeks": 1,
                    "level_28": 40.0 + i % 10,
                }
            )
        elif slug == "customer-segmentation":
            out.append(
                {
                    "customer_id": f"C{i}",
                    "features": {
                        "recency_days": 3 + i % 60,
                        "frequency": 1 + i % 12,
                        "monetary": 20.0 + 13 * (i % 40),
                        "visit_value": 25.0,
                        "unit_value": 6.5,
                        "promotion_share": 0.2,
                        "online_share": 0.5,
                        "weekend_share": 0.3,
                    },
                }
            )
        else:
            out.append(
                {
                    "customer_id": f"C{i}",
                    "k": 5,
                    "history": [
                        {"product_id": products[(i * 7 + j) % len(products)], "age_days": j}
                        for j in range(3)
                    ],
                }
            )
    return out


def _routing(artifacts: dict, revision: int, weight: int | None) -> object:
    models = {}
    for slug, versions in artifacts.items():
        entry = {"stable": {"version": "1.0.0", "artifact": versions["1.0.0"]}}
        if weight:
            entry["canary"] = {"version": "1.1.0", "artifact": versions["1.1.0"], "weight": weight}
        models[slug] = entry
    return routing_from_dict({"revision": revision, "models": models})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_revision(url: str, revision: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"{url}/readyz", timeout=2)
            if answer.status_code == 200 and answer.json()["revision"] == revision:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"the server did not serve revision {revision}")


def _through_server(
    url: str, slug: str, bodies: list[dict], concurrency: int
) -> tuple[str, float, float, float, int]:
    """(slug, req/s with `concurrency` clients, sequential p50, p99, failed requests)."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def send(chunk: list[dict]) -> None:
        nonlocal failures
        session = requests.Session()
        for body in chunk:
            t = time.perf_counter()
            answer = session.post(f"{url}/v1/models/{slug}/predict", json=body, timeout=30)
            spent = time.perf_counter() - t
            with lock:
                latencies.append(spent)
                failures += answer.status_code != 200

    # One sequential pass for latency, then concurrent clients for throughput.
    send(bodies[: min(200, len(bodies))])
    sequential = list(latencies)
    latencies.clear()
    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return (
        slug,
        len(latencies) / elapsed,
        _percentile(sequential, 0.5),
        _percentile(sequential, 0.99),
        failures,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    snapshot = ensure_sample_snapshot(root=work / "lake", seed=3, n_transactions=20_000)
    artifacts: dict[str, dict[str, str]] = {}
    for kind, slug in SLUGS.items():
        artifacts[slug] = {}
        for version, params in (("1.0.0", None), ("1.1.0", CANARY_PARAMS[kind])):
            artifacts[slug][version] = run_pipeline(
                model_kind=kind,
                lake_root=work / "lake",
                artifact_root=work / "artifacts",
                snapshot_id=snapshot.id,
                params=params,
                seed=3,
                run_id=f"{kind}-{version}",
            ).artifact_uri
    _progress("trained the three models, two versions each")
    categories = list(load_artifact(artifacts["demand-forecasting"]["1.0.0"]).model.categories)
    products = [
        str(p) for p in load_artifact(artifacts["product-recommendation"]["1.0.0"]).model.products
    ]

    floor: dict[str, tuple[float, float, float]] = {}
    bodies = {slug: _bodies(slug, categories, products, args.requests) for slug in artifacts}
    for kind, slug in SLUGS.items():
        predictor = predictor_load(kind=kind, artifact=artifacts[slug]["1.0.0"])
        parsed = [PREDICTORS[kind].request.model_validate(b) for b in bodies[slug]]
        times = []
        started = time.perf_counter()
        for request in parsed:
            t = time.perf_counter()
            predictor.predict(request)
            times.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
        floor[slug] = (len(parsed) / elapsed, _percentile(times, 0.5), _percentile(times, 0.99))

    _progress("measured the in-process floor")
    routing_path = work / "routing.json"
    routing_write(routing_path, _routing(artifacts, 1, None))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # nosec B603  # fixed argument list
        [sys.executable, "-m", "serving", "--routing", str(routing_path), "--port", str(port)],
        cwd=ROOT,
    )
    try:
        _wait_revision(url, 1)
        rows = []
        for slug in artifacts:
            rows.append(_through_server(url, slug, bodies[slug], args.concurrency))
            _progress(f"sent {slug} its requests")

        print()
        header = (
            f"{'model':<24} {'floor/s':>8} {'floor p50':>10} {'floor p99':>10} "
            f"{'server/s':>9} {'p50':>8} {'p99':>8} {'added p50':>10} {'failed':>7}"
        )
        print(header)
        print("-" * len(header))
        for slug, rps, p50, p99, failed in rows:
            f_rps, f_p50, f_p99 = floor[slug]
            print(
                f"{slug:<24} {f_rps:8.0f} {f_p50 * 1000:8.2f}ms {f_p99 * 1000:8.2f}ms "
                f"{rps:9.0f} {p50 * 1000:6.2f}ms {p99 * 1000:6.2f}ms "
                f"{(p50 - f_p50) * 1000:8.2f}ms {failed:7d}"
            )

        # Weight changes under a fixed rate.
        stop = threading.Event()
        outcomes = {"ok": 0, "failed": 0}
        lock = threading.Lock()

        def steady(slug: str) -> None:
            session = requests.Session()
            interval = 3 / args.rate
            i = 0
            while not stop.is_set():
                t = time.perf_counter()
                body = bodies[slug][i % len(bodies[slug])]
                i += 1
                try:
                    ok = (
                        session.post(
                            f"{url}/v1/models/{slug}/predict", json=body, timeout=30
                        ).status_code
                        == 200
                    )
                except requests.RequestException:
                    ok = False
                with lock:
                    outcomes["ok" if ok else "failed"] += 1
                time.sleep(max(0.0, interval - (time.perf_counter() - t)))

        threads = [threading.Thread(target=steady, args=(s,)) for s in artifacts]
        for thread in threads:
            thread.start()
        weights = (10, 50, 100, None)
        for revision, weight in enumerate(weights, start=2):
            time.sleep(args.seconds / len(weights))
            routing_write(routing_path, _routing(artifacts, revision, weight))
            _wait_revision(url, revision)
        stop.set()
        for thread in threads:
            thread.join()
        print()
        print(
            f"weight changes 10 -> 50 -> 100 -> 0 at {args.rate:.0f} req/s: "
            f"{outcomes['ok']} answered, {outcomes['failed']} failed"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

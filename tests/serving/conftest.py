"""The model server as a real process: three models trained on a small sample lake
(two versions each, once per session), a routing document, and the server started on
a free port, waiting until it is ready."""

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from pipelines.artifacts import load_artifact
from pipelines.sample_data import ensure_sample_snapshot
from pipelines.steps import run_pipeline
from serving.routing import Routing, routing_from_dict, routing_write

ROOT = Path(__file__).resolve().parents[2]
SLUGS = {
    "forecasting": "demand-forecasting",
    "segmentation": "customer-segmentation",
    "recommendation": "product-recommendation",
}
# The canary versions differ from the stable ones in their hyperparameters, so their
# answers differ too.
CANARY_PARAMS = {
    "forecasting": {"max_iter": 60},
    "segmentation": {"n_clusters": 3},
    "recommendation": {"n_neighbours": 5},
}


@dataclass
class TrainedVersions:
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)  # slug -> version -> uri
    categories: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    lake_root: Path | None = None

    def routing(
        self, *, canary_weight: int | None = None, revision: int = 1, faults: dict | None = None
    ) -> Routing:
        models = {}
        for slug, versions in self.artifacts.items():
            entry: dict = {"stable": {"version": "1.0.0", "artifact": versions["1.0.0"]}}
            if canary_weight is not None:
                entry["canary"] = {
                    "version": "1.1.0",
                    "artifact": versions["1.1.0"],
                    "weight": canary_weight,
                }
            if faults:
                entry["faults"] = faults
            models[slug] = entry
        return routing_from_dict({"revision": revision, "models": models})


@pytest.fixture(scope="session")
def trained_versions(tmp_path_factory: pytest.TempPathFactory) -> TrainedVersions:
    root = tmp_path_factory.mktemp("serving")
    snapshot = ensure_sample_snapshot(root=root / "lake", seed=3, n_transactions=20_000)
    trained = TrainedVersions(lake_root=root / "lake")
    for kind, slug in SLUGS.items():
        trained.artifacts[slug] = {}
        for version, params in (("1.0.0", None), ("1.1.0", CANARY_PARAMS[kind])):
            result = run_pipeline(
                model_kind=kind,
                lake_root=root / "lake",
                artifact_root=root / "artifacts",
                snapshot_id=snapshot.id,
                params=params,
                seed=3,
                run_id=f"{kind}-{version}",
            )
            trained.artifacts[slug][version] = result.artifact_uri
    forecaster = load_artifact(trained.artifacts["demand-forecasting"]["1.0.0"]).model
    recommender = load_artifact(trained.artifacts["product-recommendation"]["1.0.0"]).model
    trained.categories = list(forecaster.categories)
    trained.products = [str(p) for p in recommender.products]
    return trained


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    routing_path: Path
    process: subprocess.Popen
    revisions: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def route(self, routing: Routing, *, timeout: float = 30.0) -> None:
        """Write a routing document and wait until the server serves its revision."""
        routing_write(self.routing_path, routing)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{self.url}/readyz", timeout=5)
            except requests.Timeout:
                continue  # a busy two-core machine; the deadline decides
            if answer.status_code == 200 and answer.json()["revision"] == routing.revision:
                return
            time.sleep(0.05)
        raise AssertionError(f"the server did not take revision {routing.revision}")


def start_server(
    routing_path: Path,
    *,
    allow_faults: bool = True,
    prediction_log_dir: Path | None = None,
    timeout: float = 120,
    suppression_list: Path | None = None,
) -> RunningServer:
    port = free_port()
    command = [sys.executable, "-m", "serving", "--routing", str(routing_path), "--port", str(port)]
    if allow_faults:
        command.append("--allow-faults")
    if prediction_log_dir is not None:
        command += ["--prediction-log-dir", str(prediction_log_dir)]
    if suppression_list is not None:
        command += ["--suppression-list", str(suppression_list)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout  # 120 s: three models on a busy shared machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the model server exited with {process.returncode}")
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return RunningServer(url=url, routing_path=routing_path, process=process)
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the model server did not become ready")


@pytest.fixture()
def model_server(trained_versions: TrainedVersions, tmp_path: Path) -> Iterator[RunningServer]:
    routing_path = tmp_path / "routing.json"
    routing_write(routing_path, trained_versions.routing())
    server = start_server(routing_path)
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture()
def sample_request(trained_versions: TrainedVersions) -> Callable[[str, int], dict]:
    """A valid request body for a model, varied by n (n picks the key)."""

    def make(slug: str, n: int = 0) -> dict:
        if slug == "demand-forecasting":
            return {
                "category_id": trained_versions.categories[n % len(trained_versions.categories)],
                "store_id": f"S{n % 7:03d}",
                "start_date": "2025-03-03",
                "weeks": 1,
                "level_28": 40.0 + n % 10,
                "same_weekday_4": 42.0,
            }
        if slug == "customer-segmentation":
            return {
                "customer_id": f"C{n:06d}",
                "features": {
                    "recency_days": 3 + n % 60,
                    "frequency": 1 + n % 12,
                    "monetary": 20.0 + 13 * (n % 40),
                    "visit_value": 25.0,
                    "unit_value": 6.5,
                    "promotion_share": 0.2,
                    "online_share": 0.5,
                    "weekend_share": 0.3,
                },
            }
        products = trained_versions.products
        return {
            "customer_id": f"C{n:06d}",
            "k": 5,
            "history": [
                {"product_id": products[(n * 7 + i) % len(products)], "age_days": i}
                for i in range(3)
            ],
        }

    return make

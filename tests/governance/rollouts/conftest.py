"""Rollouts against the real model server and a real Prometheus scraping it every
second: versions of customer segmentation whose artifacts the server loads, the canary
target's approval, and a steady stream of requests."""

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from governance.choices import Target
from governance.models import RegisteredModel, TargetAssignment
from serving.routing import routing_from_dict, routing_write
from tests.conftest import PROMETHEUS_BINARY
from tests.factories.registry import ModelVersionFactory
from tests.governance.reviews import conftest as reviews_fixtures
from tests.serving import conftest as serving_fixtures
from tests.serving.conftest import RunningServer, free_port, start_server

# Fixtures shared with the review board's and the model server's tests.
approved_for = reviews_fixtures.approved_for
lead = reviews_fixtures.lead
open_review = reviews_fixtures.open_review
owner = reviews_fixtures.owner
sample_request = serving_fixtures.sample_request
trained_versions = serving_fixtures.trained_versions

MODEL = "customer-segmentation"
FAST = {
    "steps": [30, 60, 100],
    "bake_seconds": 5,
    # Latency limits loose enough for a busy two-core test machine; latency regressions
    # are not what these tests inject.
    "thresholds": {
        "min_requests": 5,
        "max_prediction_shift": 0.5,
        "max_latency_ratio": 4,
        "min_latency_increase_seconds": 0.1,
    },
}


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen

    def wait_for_samples(self, promql: str, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = requests.get(
                f"{self.url}/api/v1/query", params={"query": promql}, timeout=5
            ).json()
            if body["data"]["result"]:
                return
            time.sleep(0.25)
        raise AssertionError(f"Prometheus has no samples for {promql}")


@pytest.fixture(scope="module")
def serving_stack(
    trained_versions,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, Prometheus]]:
    """One model server and one Prometheus (scrape and evaluation every second) per
    module."""
    folder = tmp_path_factory.mktemp("stack")
    routing_path = folder / "routing.json"
    routing_write(routing_path, routing_from_dict({"revision": 1, "models": {}}))
    server = start_server(routing_path)
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: serving\n    static_configs:\n"
        f"      - targets: ['{server.url.removeprefix('http://')}']\n"
    )
    process = subprocess.Popen(
        [
            PROMETHEUS_BINARY,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prometheus = Prometheus(url=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    prometheus.wait_for_samples('up{job="serving"} == 1')
    yield server, prometheus
    for proc in (process, server.process):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Stack:
    server: RunningServer
    prometheus: Prometheus
    stable: object
    canary: object
    revision: int = 0

    def faults(self, faults: dict) -> None:
        """Serve the stable version alone, with injected faults for versions."""
        self.revision = int(time.time() * 1000)
        self.server.route(
            routing_from_dict(
                {
                    "revision": self.revision,
                    "models": {
                        MODEL: {
                            "stable": {
                                "version": self.stable.version,
                                "artifact": self.stable.artifact_uri,
                            },
                            "faults": faults,
                        }
                    },
                }
            )
        )


@pytest.fixture()
def stack(
    serving_stack,
    trained_versions,
    settings,
    approved_for,
) -> Stack:
    """Segmentation 1.0.0 serving the canary target, 1.1.0 approved for it (same
    artifact, so its predictions match unless a test says otherwise)."""
    server, prometheus = serving_stack
    settings.ROLLOUTS_BACKEND = "local"
    settings.SERVING_ROUTING_FILE = str(server.routing_path)
    settings.SERVING_URL = server.url
    settings.SERVING_READY_TIMEOUT = 30
    settings.PROMETHEUS_URL = prometheus.url
    model = RegisteredModel.objects.get(slug=MODEL)
    artifact = trained_versions.artifacts[MODEL]["1.0.0"]
    stable = ModelVersionFactory(
        model=model, version="1.0.0", version_minor=0, artifact_uri=artifact
    )
    canary = ModelVersionFactory(
        model=model, version="1.1.0", version_minor=1, artifact_uri=artifact
    )
    TargetAssignment.objects.create(model=model, target=Target.CANARY, version=stable)
    approved_for(canary, Target.STAGING)  # the canary policy wants staging first
    approved_for(canary, Target.CANARY)
    made = Stack(server=server, prometheus=prometheus, stable=stable, canary=canary)
    made.faults({})
    return made


@dataclass
class Traffic:
    """Requests at a steady rate from a few threads until stopped; failures kept."""

    url: str
    rate: float = 100.0
    failures: list[str] = field(default_factory=list)
    versions: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _send(self, offset: int, body_for) -> None:
        session = requests.Session()
        n = offset
        while not self._stop.is_set():
            n += 4
            started = time.monotonic()
            try:
                answer = session.post(self.url, json=body_for(MODEL, n), timeout=10)
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code} {answer.text[:100]}")
                else:
                    self.versions[answer.json()["version"]] += 1
            except requests.RequestException as error:
                self.failures.append(repr(error))
            time.sleep(max(0.0, 4 / self.rate - (time.monotonic() - started)))

    def start(self, body_for) -> "Traffic":
        for offset in range(4):
            thread = threading.Thread(target=self._send, args=(offset, body_for), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.fixture()
def traffic(stack, sample_request) -> Iterator[Traffic]:
    running = Traffic(url=f"{stack.server.url}/v1/models/{MODEL}/predict").start(sample_request)
    yield running
    running.stop()


def routing_of(path: Path) -> dict:
    import json

    return json.loads(path.read_text())["models"][MODEL]


@pytest.fixture()
def rollout_versions(approved_for):
    """Segmentation 1.0.0 serving the canary target, 1.1.0 approved for it; no server."""
    model = RegisteredModel.objects.get(slug=MODEL)
    stable = ModelVersionFactory(model=model, version="1.0.0", version_minor=0)
    canary = ModelVersionFactory(model=model, version="1.1.0", version_minor=1)
    TargetAssignment.objects.create(model=model, target=Target.CANARY, version=stable)
    approved_for(canary, Target.STAGING)
    approved_for(canary, Target.CANARY)
    return stable, canary

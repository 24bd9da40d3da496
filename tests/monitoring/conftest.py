"""Fixtures for monitoring: registered versions through governance's own service."""

import shutil
import socket
import subprocess
import time
from typing import Any

import pytest
import requests

from governance.models import ModelVersion
from governance.services.registry import version_register
from portal.audit.actors import Actor
from tests.governance.conftest import registration_body

CI = Actor.system("tests")


@pytest.fixture()
def register(db):
    """register("1.2.0", model="customer-segmentation") -> ModelVersion"""

    def make(version: str = "1.0.0", model: str = "demand-forecasting", **overrides: Any):
        created, _ = version_register(
            model_slug=model, data=registration_body(version, **overrides), actor=CI
        )
        return ModelVersion.objects.select_related("model").get(pk=created.pk)

    return make


@pytest.fixture()
def prometheus_server(tmp_path):
    """A real Prometheus from Debian's package on a free port, scraping itself every
    second, in a temporary folder; yields its base URL."""
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    process = subprocess.Popen(
        [
            shutil.which("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)  # waiting for a real server to start, not for time to pass
        else:
            pytest.fail("Prometheus did not become ready within 30 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

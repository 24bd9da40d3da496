"""The model server loads the versions it serves from Cloud Storage: the real server
process, its artifacts in the Cloud Storage stand-in (reached through
google-cloud-storage, the endpoint given by GCS_API_ENDPOINT), and a changed model file
refused, never served."""

import subprocess

import pytest
import requests

from pipelines.artifacts import local_path
from serving.routing import routing_from_dict, routing_write
from tests.fakes.storage_server import FakeStorageServer
from tests.serving.conftest import start_server

SLUG = "customer-segmentation"


@pytest.fixture()
def storage(monkeypatch):
    with FakeStorageServer() as fake:
        fake.add_bucket("zm-models")
        monkeypatch.setenv("GCS_API_ENDPOINT", fake.url)
        yield fake


def _upload(storage, local_uri: str, prefix: str) -> str:
    folder = local_path(local_uri)
    for name in ("model.joblib", "metadata.json"):
        storage.put(f"gs://zm-models/{prefix}/{name}", (folder / name).read_bytes())
    return f"gs://zm-models/{prefix}/"


def _stop(server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def test_model_server_serves_versions_loaded_from_cloud_storage(
    storage, trained_versions, sample_request, tmp_path
):
    """Stable and canary of one model, both gs:// artifacts: the server downloads each
    version's metadata and model through the JSON API and answers from them."""
    versions = trained_versions.artifacts[SLUG]
    stable = _upload(storage, versions["1.0.0"], "segmentation/run-1")
    canary = _upload(storage, versions["1.1.0"], "segmentation/run-2")
    routing_path = tmp_path / "routing.json"
    routing_write(
        routing_path,
        routing_from_dict(
            {
                "revision": 1,
                "models": {
                    SLUG: {
                        "stable": {"version": "1.0.0", "artifact": stable},
                        "canary": {"version": "1.1.0", "artifact": canary, "weight": 50},
                    }
                },
            }
        ),
    )
    server = start_server(routing_path, allow_faults=False)
    try:
        pinned = requests.post(
            f"{server.url}/v1/models/{SLUG}/versions/1.1.0/predict",
            json=sample_request(SLUG, 3),
            timeout=10,
        )
        assert pinned.status_code == 200, pinned.text
        assert (pinned.json()["version"], pinned.json()["track"]) == ("1.1.0", "canary")
    finally:
        _stop(server)
    downloads = sorted(r.path for r in storage.requests_to("GET", r"^/download/"))
    assert downloads == [
        f"/download/storage/v1/b/zm-models/o/segmentation/{run}/{name}"
        for run in ("run-1", "run-2")
        for name in ("metadata.json", "model.joblib")
    ]


def test_model_server_refuses_a_changed_model_file_in_cloud_storage(
    storage, trained_versions, tmp_path
):
    """A model file that no longer matches the hash in its metadata is not loaded: the
    server never becomes ready on that routing."""
    stable = _upload(storage, trained_versions.artifacts[SLUG]["1.0.0"], "segmentation/bad")
    storage.put(f"{stable}model.joblib", b"a different file")
    routing_path = tmp_path / "routing.json"
    routing_write(
        routing_path,
        routing_from_dict(
            {"revision": 1, "models": {SLUG: {"stable": {"version": "1.0.0", "artifact": stable}}}}
        ),
    )
    with pytest.raises(AssertionError, match=r"did not become ready|exited with"):
        start_server(routing_path, allow_faults=False, timeout=20)
    assert storage.requests_to("GET", r"^/download/.*/segmentation/bad/model\.joblib$")

"""The artifact store behind its small interface: local folders, and Cloud Storage
through google-cloud-storage (against the local stand-in)."""

import pytest

from pipelines.artifacts import (
    ArtifactError,
    GcsArtifactStore,
    LocalArtifactStore,
    load_artifact,
    save_artifact,
    store_for,
)


def test_local_store_by_path_or_file_uri(tmp_path):
    for location in (tmp_path, tmp_path.as_uri()):
        store = store_for(location)
        assert isinstance(store, LocalArtifactStore)
        uri = store.write("kind/run", {"a.txt": b"hello"})
        assert uri == (tmp_path / "kind" / "run").as_uri() + "/"
        assert store.read(uri, "a.txt") == b"hello"


def test_saved_model_round_trips_with_its_metadata(tmp_path):
    uri, digest = save_artifact(
        store=store_for(tmp_path),
        key="forecasting/r1",
        model={"weights": [1, 2]},
        metadata={"a": 1},
    )
    loaded = load_artifact(uri)
    assert loaded.model == {"weights": [1, 2]}
    assert loaded.metadata["a"] == 1 and loaded.metadata["model_sha256"] == digest


def test_store_refuses_unknown_schemes_and_keys_leaving_it(tmp_path):
    with pytest.raises(ValueError, match="no artifact store for s3://"):
        store_for("s3://bucket/models")
    with pytest.raises(ArtifactError, match="leaves the store"):
        store_for(tmp_path).write("../outside", {"x": b""})
    with pytest.raises(ArtifactError, match=r"no metadata\.json"):
        load_artifact((tmp_path / "missing").as_uri() + "/")


@pytest.fixture()
def storage(monkeypatch):
    from tests.fakes.storage_server import FakeStorageServer

    with FakeStorageServer() as fake:
        fake.add_bucket("zm-models")
        monkeypatch.setenv("GCS_API_ENDPOINT", fake.url)
        yield fake


def test_gcs_store_round_trips_a_model_through_cloud_storage(storage):
    """save_artifact to gs:// uploads the model then its metadata under the key;
    load_artifact downloads both and checks the model's hash."""
    store = store_for("gs://zm-models/artifacts")
    assert isinstance(store, GcsArtifactStore)
    uri, digest = save_artifact(
        store=store, key="forecasting/r1", model={"weights": [1, 2]}, metadata={"a": 1}
    )
    assert uri == "gs://zm-models/artifacts/forecasting/r1/"
    assert storage.names("zm-models") == [
        "artifacts/forecasting/r1/metadata.json",
        "artifacts/forecasting/r1/model.joblib",
    ]
    uploads = storage.requests_to("POST", r"^/upload/storage/v1/b/zm-models/o$")
    assert [r.query["uploadType"] for r in uploads] == [["multipart"], ["multipart"]]
    loaded = load_artifact(uri)
    assert loaded.model == {"weights": [1, 2]} and loaded.metadata["model_sha256"] == digest
    downloads = [r.path for r in storage.requests_to("GET", r"^/download/")]
    assert downloads == [
        "/download/storage/v1/b/zm-models/o/artifacts/forecasting/r1/metadata.json",
        "/download/storage/v1/b/zm-models/o/artifacts/forecasting/r1/model.joblib",
    ]


def test_gcs_store_refuses_a_changed_model_and_a_missing_artifact(storage):
    uri, _ = save_artifact(store=store_for("gs://zm-models/a"), key="k/r", model=[1], metadata={})
    storage.put(uri + "model.joblib", b"not the model that was trained")
    with pytest.raises(ArtifactError, match="does not match its recorded hash"):
        load_artifact(uri)
    with pytest.raises(ArtifactError, match=r"no metadata\.json in the artifact at gs://"):
        load_artifact("gs://zm-models/a/k/nothing/")
    with pytest.raises(ArtifactError, match="leaves the store"):
        store_for("gs://zm-models/a").write("../x", {"f": b""})

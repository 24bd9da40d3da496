"""The artifact store behind its small interface: local folders now, gs:// later."""

import pytest

from pipelines.artifacts import (
    ArtifactError,
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


def test_store_refuses_gs_until_written_and_unknown_schemes(tmp_path):
    with pytest.raises(NotImplementedError, match="Cloud Storage"):
        store_for("gs://bucket/models")
    with pytest.raises(ValueError, match="no artifact store for s3://"):
        store_for("s3://bucket/models")
    with pytest.raises(ArtifactError, match="leaves the store"):
        store_for(tmp_path).write("../outside", {"x": b""})
    with pytest.raises(ArtifactError, match=r"no metadata\.json"):
        load_artifact((tmp_path / "missing").as_uri() + "/")

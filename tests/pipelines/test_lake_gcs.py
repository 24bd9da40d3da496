"""The lake on Cloud Storage (`gs://bucket/lake`): snapshots written locally and
uploaded manifest last, read back through a local cache, their content hashes checked;
imports and training with the lake's root on gs://, all through google-cloud-storage
against the stand-in."""

import json

import pytest

from pipelines.importer import parse_mapping
from pipelines.lake import (
    SnapshotCorrupt,
    SnapshotNotFound,
    list_snapshots,
    open_snapshot,
    write_snapshot,
)
from pipelines.sample_data import ensure_sample_snapshot
from pipelines.sources import import_uris
from pipelines.steps import run_pipeline
from tests.fakes.storage_server import FakeStorageServer

LAKE = "gs://zm-lake/lake"


@pytest.fixture()
def storage(monkeypatch, tmp_path):
    with FakeStorageServer() as fake:
        fake.add_bucket("zm-lake")
        monkeypatch.setenv("GCS_API_ENDPOINT", fake.url)
        monkeypatch.setenv("PIPELINES_LAKE_CACHE", str(tmp_path / "cache-a"))
        yield fake


def _fresh_cache(monkeypatch, tmp_path, name):
    """Another machine: the same lake, an empty cache."""
    monkeypatch.setenv("PIPELINES_LAKE_CACHE", str(tmp_path / name))


def test_snapshot_on_gcs_uploads_tables_then_the_manifest_and_reads_back(
    storage, monkeypatch, tmp_path
):
    import pandas as pd

    frame = pd.DataFrame({"transaction_id": [1, 2], "quantity": [3, 4]})
    written = write_snapshot(root=LAKE, tables={"transactions": frame}, source={"kind": "t"})
    folder = f"lake/sha256-{written.id.removeprefix('sha256:')}"
    assert storage.names("zm-lake") == [f"{folder}/manifest.json", f"{folder}/transactions.parquet"]
    uploads = [r.body for r in storage.requests_to("POST", r"^/upload/")]
    names = [json.loads(_metadata(body))["name"] for body in uploads]
    assert names == [f"{folder}/transactions.parquet", f"{folder}/manifest.json"]
    _fresh_cache(monkeypatch, tmp_path, "cache-b")
    read = open_snapshot(root=LAKE)
    assert read.id == written.id and str(read.path).startswith(str(tmp_path / "cache-b"))
    assert read.load(verify=True)["transactions"]["quantity"].tolist() == [3, 4]
    # Written again: the lake has it, nothing is uploaded twice.
    write_snapshot(root=LAKE, tables={"transactions": frame}, source={"kind": "t"})
    assert len(storage.requests_to("POST", r"^/upload/")) == 2


def _metadata(body: bytes) -> bytes:
    """The JSON part of a multipart upload as the client sent it."""
    start = body.index(b"{")
    return body[start : body.index(b"}", start) + 1]


def test_gcs_lake_refuses_a_changed_table_and_names_missing_snapshots(
    storage, monkeypatch, tmp_path
):
    import pandas as pd

    with pytest.raises(SnapshotNotFound, match=r"holds no snapshot yet.*lake_import"):
        open_snapshot(root=LAKE)
    written = write_snapshot(root=LAKE, tables={"transactions": pd.DataFrame({"quantity": [1, 2]})})
    other = write_snapshot(
        root=tmp_path / "elsewhere", tables={"transactions": pd.DataFrame({"quantity": [9, 9]})}
    )
    folder = f"{LAKE}/sha256-{written.id.removeprefix('sha256:')}"
    storage.put(
        f"{folder}/transactions.parquet", (other.path / "transactions.parquet").read_bytes()
    )
    _fresh_cache(monkeypatch, tmp_path, "cache-b")
    with pytest.raises(SnapshotCorrupt):
        open_snapshot(root=LAKE, snapshot_id=written.id).load(verify=True)
    with pytest.raises(SnapshotNotFound, match="no snapshot sha256:"):
        open_snapshot(root=LAKE, snapshot_id="sha256:" + "0" * 64)


def test_import_into_a_gcs_lake_publishes_the_snapshot(storage, monkeypatch, tmp_path):
    export = tmp_path / "export.csv"
    export.write_text("Invoice,InvoiceDate,Qty\n1,2024-01-01 10:00,2\n2,2024-01-02 10:00,3\n")
    mapping = {"transactions": parse_mapping("Invoice=transaction_id,InvoiceDate=ts,Qty=quantity")}
    first = import_uris(root=LAKE, items=[("transactions", str(export))], mapping=mapping)
    assert first.created
    _fresh_cache(monkeypatch, tmp_path, "cache-b")
    (listed,) = list_snapshots(root=LAKE)
    assert listed.id == first.snapshot.id
    assert listed.source["files"][0]["name"] == "export.csv"
    again = import_uris(root=LAKE, items=[("transactions", str(export))], mapping=mapping)
    assert not again.created and again.snapshot.id == first.snapshot.id


def test_training_reads_its_snapshot_from_a_gcs_lake(storage, monkeypatch, tmp_path):
    """pipeline steps open the lake by its gs:// root as they open a folder: the run
    names the snapshot it trained on."""
    snapshot = ensure_sample_snapshot(root=LAKE, seed=3, n_transactions=20_000)
    _fresh_cache(monkeypatch, tmp_path, "cache-b")
    result = run_pipeline(
        model_kind="segmentation", lake_root=LAKE, artifact_root=tmp_path / "artifacts"
    )
    assert result.data_version == snapshot.id
    assert ensure_sample_snapshot(root=LAKE, seed=3, n_transactions=20_000).id == snapshot.id

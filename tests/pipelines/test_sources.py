"""Imports from outside the machine: Cloud Storage objects, BigQuery tables and table
snapshots, and files in a DVC repository, each through its official client library
(against the local stand-ins, or a DVC repository the test creates), with the data
version each names recorded beside the lake's content hash."""

import os
import shutil
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import cloud_storage
from pipelines.importer import ImportFailed, ImportRefused, parse_mapping
from pipelines.lake import list_snapshots
from pipelines.sources import SourceEndpoints, check_source_uri, import_uris
from pipelines.steps import run_pipeline
from tests.fakes.bigquery_server import FakeBigQueryServer
from tests.fakes.storage_server import FakeStorageServer

NOW = datetime(2025, 1, 1, tzinfo=UTC)
CSV = (
    "InvoiceNo,InvoiceDate,Qty\n"
    "1,2024-01-01 10:00,2\n"
    "2,2024-01-02 11:00,-1\n"
    "3,2024-01-03 12:00,4\n"
    "4,2024-01-04 13:00,1\n"
)
MAPPING = {"transactions": parse_mapping("InvoiceNo=transaction_id,InvoiceDate=ts,Qty=quantity")}
BQ_SCHEMA = [
    {"name": "InvoiceNo", "type": "INTEGER"},
    {"name": "InvoiceDate", "type": "TIMESTAMP"},
    {"name": "Qty", "type": "INTEGER"},
    {"name": "Note", "type": "STRING"},
]


@pytest.fixture()
def storage():
    with FakeStorageServer() as fake:
        fake.add_bucket("client-exports")
        yield fake


@pytest.fixture()
def bigquery():
    with FakeBigQueryServer(page_size=2) as fake:
        yield fake


def _bq_rows(count, *, bad=()):
    return [
        {
            "InvoiceNo": i,
            "InvoiceDate": datetime(2024, 1, 1 + i % 28, 10, tzinfo=UTC),
            "Qty": -1 if i in bad else 1 + i % 3,
            "Note": "ignored",
        }
        for i in range(1, count + 1)
    ]


# --- Cloud Storage ---------------------------------------------------------------------


def test_gcs_csv_import_records_object_generation_and_reads_the_pinned_generation(
    storage, tmp_path
):
    """A gs:// CSV is read through the JSON API (metadata, then the media of that very
    generation), mapped and checked like a local file; the snapshot names the object,
    its generation and its SHA-256."""
    storage.put("gs://client-exports/2024/sales export.csv", CSV.encode(), "text/csv")
    result = import_uris(
        root=tmp_path / "lake",
        items=[("transactions", "gs://client-exports/2024/sales export.csv")],
        endpoints=SourceEndpoints(gcs=storage.url),
        mapping=MAPPING,
        max_rejected=0.5,
        now=NOW,
    )
    generation = storage.buckets["client-exports"]["2024/sales export.csv"].generation
    (entry,) = result.snapshot.source["files"]
    assert entry["uri"] == "gs://client-exports/2024/sales export.csv"
    assert entry["name"] == "sales export.csv"
    assert entry["version"] == f"gs://client-exports/2024/sales export.csv#{generation}"
    assert entry["details"]["generation"] == generation
    assert result.snapshot.source["data_version"] == entry["version"]
    assert result.snapshot.row_counts == {"transactions": 3}
    assert result.report.tables["transactions"].rejected["quantity: below 1"]["count"] == 1
    # (The library also reads the bucket's metadata, from a background thread.)
    gets = storage.requests_to("GET", r"/o/")
    assert [r.path for r in gets] == [
        "/storage/v1/b/client-exports/o/2024/sales export.csv",
        "/download/storage/v1/b/client-exports/o/2024/sales export.csv",
    ]
    # The name travels percent-encoded, slash included, and the download is pinned.
    assert gets[0].raw_path == "/storage/v1/b/client-exports/o/2024%2Fsales%20export.csv"
    assert gets[1].query["generation"] == [str(generation)]
    assert gets[1].query["alt"] == ["media"]
    # The fetched copy is gone: only the snapshot stays in the lake.
    assert [p.name for p in (tmp_path / "lake").iterdir()] == [result.snapshot.path.name]


def test_gcs_missing_object_is_a_clear_error_and_stores_nothing(storage, tmp_path):
    with pytest.raises(ImportFailed, match=r"gs://client-exports/nope\.csv: no such object"):
        import_uris(
            root=tmp_path / "lake",
            items=[("transactions", "gs://client-exports/nope.csv")],
            endpoints=SourceEndpoints(gcs=storage.url),
            mapping=MAPPING,
        )
    assert list_snapshots(root=tmp_path / "lake") == []
    assert list((tmp_path / "lake").iterdir()) == []


def test_gcs_outage_is_an_import_error_naming_the_object(storage, tmp_path):
    """A 503 that outlasts the library's retries is reported, not a traceback."""
    storage.put("gs://client-exports/tx.csv", CSV.encode())
    storage.fail("GET", r"^/download/", status=404, times=1)
    with pytest.raises(ImportFailed, match=r"gs://client-exports/tx\.csv: download failed"):
        import_uris(
            root=tmp_path / "lake",
            items=[("transactions", "gs://client-exports/tx.csv")],
            endpoints=SourceEndpoints(gcs=storage.url),
            mapping=MAPPING,
        )


def test_gcs_download_memory_stays_flat_in_the_object_size(storage, tmp_path):
    """A 48 MiB object streams to disk: the Python heap never holds more than a few
    MiB of it (the library writes each read as it arrives)."""
    size = 48 << 20
    storage.put("gs://client-exports/big.parquet", os.urandom(size))
    client = cloud_storage.storage_client(storage.url)
    tracemalloc.start()
    try:
        cloud_storage.download_to_file(
            "gs://client-exports/big.parquet", tmp_path / "big.parquet", client=client
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "big.parquet").stat().st_size == size
    assert peak < 8 << 20


def test_gcs_upload_uses_a_resumable_session_above_8_mib(storage, tmp_path):
    """What the stand-in receives is what the client library sends for a large file:
    a resumable session and its chunks; the object arrives whole."""
    content = os.urandom(9 << 20)
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    cloud_storage.upload_file(
        path, "gs://client-exports/up/blob.bin", client=cloud_storage.storage_client(storage.url)
    )
    uploads = storage.requests_to("POST", r"^/upload/") + storage.requests_to("PUT", r"^/upload/")
    assert [r.query["uploadType"] for r in uploads] == [["resumable"], ["resumable"], ["resumable"]]
    assert uploads[0].body == {"name": "up/blob.bin"}
    assert storage.get("gs://client-exports/up/blob.bin") == content


# --- BigQuery --------------------------------------------------------------------------


def test_bigquery_snapshot_import_names_the_snapshot_and_its_time(bigquery, tmp_path):
    """bq://p.d.table@snapshot reads the snapshot (paged tabledata.list), checks it is
    a snapshot of that table, and records its name and time as the data version."""
    bigquery.add_table("client-project.sales.transactions", BQ_SCHEMA, _bq_rows(5, bad={3}))
    taken = datetime(2026, 2, 1, 6, 30, tzinfo=UTC)
    bigquery.add_snapshot(
        "client-project.sales.transactions_2026_02",
        base="client-project.sales.transactions",
        snapshot_time=taken,
    )
    # Rows added after the snapshot are not in it.
    bigquery.tables["client-project.sales.transactions"].rows.extend(_bq_rows(9)[5:])
    result = import_uris(
        root=tmp_path / "lake",
        items=[("transactions", "bq://client-project.sales.transactions@transactions_2026_02")],
        endpoints=SourceEndpoints(bigquery=bigquery.url),
        mapping=MAPPING,
        max_rejected=0.5,
        now=NOW,
    )
    version = "bq:client-project.sales.transactions_2026_02@2026-02-01T06:30:00Z"
    (entry,) = result.snapshot.source["files"]
    assert entry["version"] == version
    assert entry["name"] == "client-project.sales.transactions@transactions_2026_02"
    assert entry["details"]["snapshot_time"] == "2026-02-01T06:30:00Z"
    assert result.snapshot.source["data_version"] == version
    assert result.report.tables["transactions"].rows_read == 5
    assert result.snapshot.row_counts == {"transactions": 4}
    frame = result.snapshot.load()["transactions"]
    assert frame["ts"].iloc[0] == pd.Timestamp("2024-01-02 10:00")
    paths = [(r.method, r.path) for r in bigquery.requests]
    table = "/bigquery/v2/projects/client-project/datasets/sales/tables/transactions_2026_02"
    assert paths == [("GET", table), ("GET", f"{table}/data")] + [("GET", f"{table}/data")] * 2
    assert [r.query.get("pageToken") for r in bigquery.requests[1:]] == [None, ["2"], ["4"]]


def test_bigquery_refuses_a_snapshot_of_another_table_or_a_plain_table(bigquery, tmp_path):
    bigquery.add_table("client-project.sales.transactions", BQ_SCHEMA, _bq_rows(3))
    bigquery.add_table("client-project.sales.returns", BQ_SCHEMA, _bq_rows(3))
    bigquery.add_snapshot(
        "client-project.sales.returns_snap",
        base="client-project.sales.returns",
        snapshot_time=NOW,
    )
    endpoints = SourceEndpoints(bigquery=bigquery.url)
    with pytest.raises(ImportFailed, match=r"is a snapshot of client-project\.sales\.returns, not"):
        import_uris(
            root=tmp_path,
            items=[("transactions", "bq://client-project.sales.transactions@returns_snap")],
            endpoints=endpoints,
            mapping=MAPPING,
        )
    with pytest.raises(ImportFailed, match=r"sales\.returns is not a table snapshot"):
        import_uris(
            root=tmp_path,
            items=[("transactions", "bq://client-project.sales.transactions@returns")],
            endpoints=endpoints,
            mapping=MAPPING,
        )
    with pytest.raises(ImportFailed, match=r"BigQuery answered: 404 .*Not found: Table"):
        import_uris(
            root=tmp_path,
            items=[("transactions", "bq://client-project.sales.nothing")],
            endpoints=endpoints,
            mapping=MAPPING,
        )
    assert list_snapshots(root=tmp_path) == []


def test_bigquery_plain_table_is_versioned_by_its_modification_time_with_a_warning(
    bigquery, tmp_path
):
    bigquery.add_table("client-project.sales.transactions", BQ_SCHEMA, _bq_rows(3))
    result = import_uris(
        root=tmp_path / "lake",
        items=[("transactions", "bq://client-project.sales.transactions")],
        endpoints=SourceEndpoints(bigquery=bigquery.url),
        mapping=MAPPING,
        now=NOW,
    )
    (entry,) = result.snapshot.source["files"]
    assert entry["version"].startswith("bq:client-project.sales.transactions@20")
    assert "not a snapshot" in entry["details"]["warning"]


def test_bigquery_rejections_refuse_the_import_past_the_limit(bigquery, tmp_path):
    bigquery.add_table("client-project.sales.transactions", BQ_SCHEMA, _bq_rows(4, bad={1, 2}))
    with pytest.raises(ImportRefused, match=r"2 of 4 rows rejected \(50\.00%\)"):
        import_uris(
            root=tmp_path / "lake",
            items=[("transactions", "bq://client-project.sales.transactions")],
            endpoints=SourceEndpoints(bigquery=bigquery.url),
            mapping=MAPPING,
            now=NOW,
        )
    assert list_snapshots(root=tmp_path / "lake") == []


def test_source_uris_are_checked_before_anything_is_fetched():
    assert check_source_uri("bq://client-project.sales.tx@snap") == (
        "bq://client-project.sales.tx@snap"
    )
    with pytest.raises(ImportFailed, match=r"expected bq://project\.dataset\.table"):
        check_source_uri("bq://sales.tx")
    with pytest.raises(ImportFailed, match=r"expected dvc://<repo>@<rev>:<path>"):
        check_source_uri("dvc://repo/data.csv")
    with pytest.raises(ImportFailed, match=r"is not a Cloud Storage URI"):
        check_source_uri("gs://")


# --- DVC -------------------------------------------------------------------------------


def _run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


@pytest.fixture()
def dvc_repo(tmp_path):
    """A git repository with DVC, a local remote, and tx.parquet tracked at tag v1
    (then changed at v2); the cache is emptied so reads go to the remote."""
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    repo.mkdir()
    dvc = str(shutil.which("dvc") or os.path.join(os.path.dirname(os.sys.executable), "dvc"))
    _run("git", "init", "-q", cwd=repo)
    _run("git", "config", "user.email", "data@example.com", cwd=repo)
    _run("git", "config", "user.name", "Data", cwd=repo)
    _run(dvc, "init", "-q", cwd=repo)
    _run(dvc, "remote", "add", "-d", "local", str(remote), cwd=repo)
    (repo / "data").mkdir()
    table = pa.table(
        {
            "InvoiceNo": [1, 2, 3],
            "InvoiceDate": ["2024-01-01 10:00", "2024-01-02 10:00", "2024-01-03 10:00"],
            "Qty": [1, 2, 3],
        }
    )
    pq.write_table(table, repo / "data" / "tx.parquet")
    _run(dvc, "add", "-q", "data/tx.parquet", cwd=repo)
    _run("git", "add", "-A", cwd=repo)
    _run("git", "commit", "-qm", "v1", cwd=repo)
    _run("git", "tag", "v1", cwd=repo)
    pq.write_table(table.slice(0, 1), repo / "data" / "tx.parquet")
    _run(dvc, "add", "-q", "data/tx.parquet", cwd=repo)
    _run("git", "commit", "-qam", "v2", cwd=repo)
    _run(dvc, "push", "-q", "--all-tags", cwd=repo)
    _run(dvc, "push", "-q", cwd=repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    commit = subprocess.run(
        ["git", "rev-parse", "v1"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    return repo, commit


def test_dvc_import_reads_the_revision_and_records_it(dvc_repo, tmp_path):
    """dvc://<repo>@v1:<path> reads the file as it was at v1 (from the DVC remote) and
    records dvc:<repo>@v1:<path> with the commit v1 resolved to."""
    repo, commit = dvc_repo
    result = import_uris(
        root=tmp_path / "lake",
        items=[("transactions", f"dvc://{repo}@v1:data/tx.parquet")],
        mapping=MAPPING,
        now=NOW,
    )
    (entry,) = result.snapshot.source["files"]
    assert entry["version"] == f"dvc:{repo}@v1:data/tx.parquet"
    assert entry["details"]["commit"] == commit
    assert len(entry["details"]["md5"]) == 32
    assert result.snapshot.row_counts == {"transactions": 3}
    later = import_uris(
        root=tmp_path / "lake",
        items=[("transactions", f"dvc://{repo}@HEAD:data/tx.parquet")],
        mapping=MAPPING,
        now=NOW,
    )
    assert later.snapshot.row_counts == {"transactions": 1}
    assert later.snapshot.id != result.snapshot.id


def test_dvc_unknown_revision_or_path_is_a_clear_error(dvc_repo, tmp_path):
    repo, _ = dvc_repo
    with pytest.raises(ImportFailed, match=r"unknown Git revision 'v9'"):
        import_uris(
            root=tmp_path / "lake",
            items=[("transactions", f"dvc://{repo}@v9:data/tx.parquet")],
            mapping=MAPPING,
        )
    with pytest.raises(ImportFailed, match=r"no data/none\.csv in .* at v1"):
        import_uris(
            root=tmp_path / "lake",
            items=[("transactions", f"dvc://{repo}@v1:data/none.csv")],
            mapping=MAPPING,
        )


# --- the data version on the card --------------------------------------------------------


def test_card_names_the_bigquery_snapshot_trained_on(bigquery, sample_lake, tmp_path):
    """A model trained on a BigQuery snapshot import says, on its card's training data
    section, which snapshot (name and time) it was."""
    tx = sample_lake.base.load(["transactions"])["transactions"]
    tx = tx[tx["customer_id"].notna()].head(6000)
    schema = [
        {"name": "InvoiceDate", "type": "TIMESTAMP"},
        {"name": "Customer", "type": "STRING"},
        {"name": "Qty", "type": "INTEGER"},
        {"name": "Product", "type": "STRING"},
        {"name": "Total", "type": "FLOAT"},
    ]
    rows = [
        {"InvoiceDate": ts.to_pydatetime(), "Customer": c, "Qty": int(q), "Product": p, "Total": a}
        for ts, c, q, p, a in zip(
            tx["ts"], tx["customer_id"], tx["quantity"], tx["product_id"], tx["amount"], strict=True
        )
    ]
    bigquery.page_size = 5000
    bigquery.add_table("client-project.sales.tx", schema, rows)
    bigquery.add_snapshot(
        "client-project.sales.tx_q1", base="client-project.sales.tx", snapshot_time=NOW
    )
    result = import_uris(
        root=tmp_path / "lake",
        items=[("transactions", "bq://client-project.sales.tx@tx_q1")],
        endpoints=SourceEndpoints(bigquery=bigquery.url),
        mapping={
            "transactions": parse_mapping(
                "InvoiceDate=ts,Customer=customer_id,Qty=quantity,Product=product_id,Total=amount"
            )
        },
    )
    trained = run_pipeline(
        model_kind="segmentation",
        lake_root=tmp_path / "lake",
        artifact_root=tmp_path / "artifacts",
        snapshot_id=result.snapshot.id,
    )
    version = "bq:client-project.sales.tx_q1@2025-01-01T00:00:00Z"
    assert trained.data_version == result.snapshot.id
    assert trained.card_facts.training_data["dataset"].startswith(f"Import of {version}, snapshot")
    assert f"data version {version})" in trained.card_facts.text["training_data"]


def test_dvc_source_without_dvc_installed_says_which_extra(monkeypatch, tmp_path):
    """Without the `dvc` extra a dvc:// source is a clear import error, not a crash."""
    monkeypatch.setitem(sys.modules, "dvc.api", None)
    with pytest.raises(ImportFailed, match=r"dvc:// sources need DVC, the `dvc` extra"):
        import_uris(
            root=tmp_path / "lake",
            items=[("transactions", "dvc://https://git.example/data.git@v1:tx.csv")],
        )

"""`manage.py lake_import` (files into a new snapshot, with the rejection report),
`manage.py lake_sample` (the generated sample) and `pipeline_run` on an empty lake."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance.training.models import PipelineRun
from pipelines.lake import list_snapshots

pytestmark = pytest.mark.django_db

EXPORT = (
    "Invoice,InvoiceDate,Qty\n"
    "1,2024-01-01 10:00,2\n"
    "2,2024-01-02 10:00,-1\n"
    "3,2024-01-03 10:00,4\n"
    "4,2024-01-04 10:00,1\n"
)


def test_lake_import_maps_columns_reports_rejections_and_names_the_snapshot(settings, tmp_path):
    """The command prints the rejection report and the new snapshot's id."""
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    export = tmp_path / "export.csv"
    export.write_text(EXPORT)
    out = StringIO()
    call_command(
        "lake_import",
        f"transactions={export}",
        "--map",
        "Invoice=transaction_id,InvoiceDate=ts,Qty=quantity",
        "--max-rejected",
        "0.5",
        "--no-progress",
        stdout=out,
    )
    (snapshot,) = list_snapshots(root=tmp_path / "lake")
    printed = out.getvalue()
    assert "transactions: 4 rows read, 3 accepted, 1 rejected (25.00%)" in printed
    assert "1 x quantity: below 1 (e.g. line 3: -1)" in printed
    assert f"Imported: new snapshot {snapshot.id}" in printed
    assert snapshot.row_counts == {"transactions": 3}


def test_lake_import_refuses_past_the_default_rejection_rate(settings, tmp_path):
    """25% rejected is past the default 5%: an error naming the share, no snapshot."""
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    export = tmp_path / "export.csv"
    export.write_text(EXPORT)
    out = StringIO()
    with pytest.raises(CommandError, match=r"1 of 4 rows rejected \(25.00%\), more than the 5.00%"):
        call_command(
            "lake_import",
            f"transactions={export}",
            "--map",
            "transactions:Invoice=transaction_id,InvoiceDate=ts,Qty=quantity",
            "--no-progress",
            stdout=out,
        )
    assert "1 x quantity: below 1" in out.getvalue()
    assert list_snapshots(root=tmp_path / "lake") == []


def test_lake_import_bad_arguments_are_clear_errors(settings, tmp_path):
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    with pytest.raises(CommandError, match=r"'export\.csv' is not TABLE=FILE"):
        call_command("lake_import", "export.csv", stdout=StringIO())
    with pytest.raises(CommandError, match=r"missing\.csv: no such file"):
        call_command("lake_import", f"transactions={tmp_path}/missing.csv", stdout=StringIO())


def test_lake_sample_creates_the_generated_sample_once(settings, tmp_path):
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    out = StringIO()
    call_command("lake_sample", "--transactions", "2000", stdout=out)
    call_command("lake_sample", "--transactions", "2000", stdout=out)
    (snapshot,) = list_snapshots(root=tmp_path / "lake")
    assert out.getvalue().count(f"Sample snapshot {snapshot.id}") == 2
    assert snapshot.row_counts["transactions"] == 2000


def test_pipeline_run_on_an_empty_lake_names_the_commands_that_fill_it(
    pipelines_settings, tmp_path
):
    """A fresh installation: no run is queued, and the error says what to run."""
    pipelines_settings.PIPELINES_LAKE_ROOT = str(tmp_path / "empty")
    with pytest.raises(CommandError, match=r"lake_import.*lake_sample"):
        call_command("pipeline_run", "demand-forecasting", stdout=StringIO())
    assert not PipelineRun.objects.exists()


def test_lake_import_from_cloud_storage_prints_the_data_version(settings, tmp_path):
    """`transactions=gs://...` reads the object through the configured endpoint and
    prints the object's generation as the data version beside the snapshot id."""
    from tests.fakes.storage_server import FakeStorageServer

    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    with FakeStorageServer() as storage:
        settings.GCS_API_ENDPOINT = storage.url
        storage.put("gs://client-exports/export.csv", EXPORT.encode())
        out = StringIO()
        call_command(
            "lake_import",
            "transactions=gs://client-exports/export.csv",
            "--map",
            "Invoice=transaction_id,InvoiceDate=ts,Qty=quantity",
            "--max-rejected",
            "0.5",
            "--no-progress",
            stdout=out,
        )
        generation = storage.buckets["client-exports"]["export.csv"].generation
    (snapshot,) = list_snapshots(root=tmp_path / "lake")
    printed = out.getvalue()
    assert f"Imported: new snapshot {snapshot.id}" in printed
    assert f"Data version: gs://client-exports/export.csv#{generation}" in printed
    assert snapshot.source["files"][0]["uri"] == "gs://client-exports/export.csv"


def test_lake_import_malformed_source_uri_is_refused_before_fetching(settings, tmp_path):
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    with pytest.raises(CommandError, match=r"bq://sales: expected bq://project\.dataset\.table"):
        call_command("lake_import", "transactions=bq://sales", stdout=StringIO())

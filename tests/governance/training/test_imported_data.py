"""Training on the client's own import: the run, the version, the card and the API all
name the imported snapshot, the API and the run the import's data version (its files'
checksums), and the card describes the files and the rejected rows."""

import pytest

from governance.choices import CardSectionKey
from governance.training.choices import RunState
from pipelines.importer import ImportSource, import_files, parse_mapping

pytestmark = pytest.mark.django_db


def test_forecasting_on_an_import_puts_its_data_version_on_run_card_and_api(
    train, lake, pipelines_settings, tmp_path, bearer
):
    """A transactions-only export with the client's column names and one bad row: the
    API's `data_version` of the version and the run is the import's (the file and its
    SHA-256), `snapshot_id` the lake's content hash."""
    tx = lake.base.load(["transactions"])["transactions"]
    export = tx[["ts", "product_id", "quantity"]].rename(
        columns={"ts": "InvoiceDate", "product_id": "StockCode", "quantity": "Qty"}
    )
    path = tmp_path / "sales.csv"
    export.to_csv(path, index=False)
    with open(path, "a") as handle:
        handle.write("2024-01-01 10:00:00,P00001,-4\n")
    pipelines_settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    snapshot = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", path)],
        mapping={"transactions": parse_mapping("InvoiceDate=ts,StockCode=product_id,Qty=quantity")},
    ).snapshot

    run = train("demand-forecasting", snapshot=snapshot.id, compare=False)

    assert run.state == RunState.SUCCEEDED, run.outcome
    assert run.snapshot_id == snapshot.id
    version = run.version
    assert version.data_version == snapshot.id
    sections = {s.key: s for s in version.card.sections.all()}
    training = sections[CardSectionKey.TRAINING_DATA]
    assert training.data["data_version"] == snapshot.id
    assert training.data["dataset"].startswith("Import of sales.csv, snapshot sha256:")
    assert "Imported from sales.csv as transactions (sha256:" in training.content
    assert "1 rejected at import (1 quantity: below 1)" in training.content
    fields = {f["name"] for f in sections[CardSectionKey.DATA_SCHEMA].data["fields"]}
    assert fields == {"transactions.ts", "transactions.product_id", "transactions.quantity"}

    file_version = f"sales.csv@sha256:{snapshot.source['files'][0]['sha256']}"
    assert run.data_version == file_version
    client, _ = bearer("registry:read")
    body = client.get(f"/api/v1/models/demand-forecasting/versions/{version.version}").json()
    assert body["data_version"] == file_version
    assert body["snapshot_id"] == snapshot.id
    listed = client.get("/api/v1/models/demand-forecasting/versions").json()["results"]
    assert [(v["data_version"], v["snapshot_id"]) for v in listed] == [(file_version, snapshot.id)]
    client, _ = bearer("pipelines:read")
    body = client.get(f"/api/v1/pipelines/runs/{run.pk}").json()
    assert (body["data_version"], body["snapshot_id"]) == (file_version, snapshot.id)

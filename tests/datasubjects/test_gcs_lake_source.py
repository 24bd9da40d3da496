"""The data lake source with the lake on Cloud Storage: a person found in the newest
gs:// snapshot, and every snapshot holding them listed for the lineage impact, read
through google-cloud-storage against the stand-in."""

import pytest

from datasubjects.connectors import ConnectorError, Identity, LakeConnector
from pipelines.lake import list_snapshots, snapshot_publish
from tests.fakes.storage_server import FakeStorageServer

LAKE = "gs://zm-lake/lake"
CONFIG = {
    "root": LAKE,
    "tables": {"customers": "customer_id", "transactions": "customer_id"},
    "person_table": "customers",
    "email_column": "email",
}


@pytest.fixture()
def gcs_lake(sample_lake, monkeypatch, tmp_path):
    """The sample lake's snapshot published to gs://, read back with an empty cache."""
    root, _ = sample_lake
    with FakeStorageServer() as fake:
        fake.add_bucket("zm-lake")
        monkeypatch.setenv("GCS_API_ENDPOINT", fake.url)
        monkeypatch.setenv("PIPELINES_LAKE_CACHE", str(tmp_path / "cache"))
        (snapshot,) = list_snapshots(root=root)
        snapshot_publish(snapshot, root=LAKE)
        yield fake, snapshot


def test_gcs_lake_source_finds_the_person_and_the_snapshots_holding_them(gcs_lake, seeded_person):
    fake, snapshot = gcs_lake
    person = Identity(email=seeded_person["email"], subject_ref="ref")
    connector = LakeConnector(CONFIG)
    assert connector.customer_ids(person.email) == {seeded_person["customer_id"]}
    finding = connector.find(person)
    assert [r["email"] for r in finding.tables["customers"]] == [person.email]
    assert finding.tables["transactions"]
    assert all(
        r["customer_id"] == seeded_person["customer_id"] for r in finding.tables["transactions"]
    )
    assert finding.queries[0].startswith(f"snapshot {snapshot.id}: customers.parquet WHERE")
    ((found_id, rows),) = connector.snapshots_containing(person)
    assert found_id == snapshot.id and rows == finding.rows
    assert fake.requests_to("GET", r"^/download/.*/manifest\.json$")
    assert f"snapshot {snapshot.id}" in connector.check()


def test_gcs_lake_source_outage_is_a_connector_or_io_error(gcs_lake, seeded_person):
    """Cloud Storage failing is an I/O error the task records and retries, not a crash."""
    fake, _ = gcs_lake
    fake.fail("GET", r"^/storage/v1/b/zm-lake/o$", status=404, times=5)
    with pytest.raises((ConnectorError, OSError), match="listing failed"):
        LakeConnector(CONFIG).find(Identity(email=seeded_person["email"], subject_ref="r"))

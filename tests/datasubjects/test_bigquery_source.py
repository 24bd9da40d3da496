"""The BigQuery data source: a seeded person found and erased through
google-cloud-bigquery against the BigQuery stand-in, every value sent as a named query
parameter, erasure by DML DELETE with its verification query, a legal hold, and the
request's tasks running end to end through the services."""

from datetime import UTC, datetime

import pytest

from datasubjects.choices import LookupKey, RequestKind, SourceKind, TaskState
from datasubjects.connectors import BigQueryConnector, ConnectorError, Identity
from datasubjects.models import SourceTask
from datasubjects.services import data_source_save, request_set_state, source_task_run
from portal.accounts.choices import Role
from tests.fakes.bigquery_server import FakeBigQueryServer

pytestmark = pytest.mark.django_db

PROJECT = "client-project"
CONFIG = {
    "project": PROJECT,
    "tables": {"crm.customers": "email", "sales.orders": "customer_id"},
    "person_table": "crm.customers",
    "email_column": "email",
    "customer_id_column": "customer_id",
}


@pytest.fixture()
def bigquery(settings):
    with FakeBigQueryServer() as fake:
        settings.BIGQUERY_API_ENDPOINT = fake.url
        fake.add_table(
            f"{PROJECT}.crm.customers",
            [
                {"name": "customer_id", "type": "STRING"},
                {"name": "email", "type": "STRING"},
                {"name": "name", "type": "STRING"},
            ],
            [
                {"customer_id": "C1", "email": "customer-1@example.com", "name": "Ada"},
                {"customer_id": "C2", "email": "customer-2@example.com", "name": "Bo"},
            ],
        )
        fake.add_table(
            f"{PROJECT}.sales.orders",
            [
                {"name": "order_id", "type": "INTEGER"},
                {"name": "customer_id", "type": "STRING"},
                {"name": "ts", "type": "TIMESTAMP"},
            ],
            [
                {"order_id": n, "customer_id": c, "ts": datetime(2024, 1, n, tzinfo=UTC)}
                for n, c in ((1, "C1"), (2, "C2"), (3, "C1"))
            ],
        )
        yield fake


PERSON = Identity(email="customer-1@example.com", subject_ref="ref-1")


def _queries(fake):
    return [r.body for r in fake.requests_to("POST", r"/queries$")]


def test_bigquery_find_maps_the_address_to_ids_and_sends_values_as_parameters(bigquery):
    finding = BigQueryConnector(CONFIG).find(PERSON)
    assert finding.tables["crm.customers"] == [
        {"customer_id": "C1", "email": "customer-1@example.com", "name": "Ada"}
    ]
    assert [row["order_id"] for row in finding.tables["sales.orders"]] == [1, 3]
    sent = _queries(bigquery)
    assert all(body["useLegacySql"] is False for body in sent)
    # No value of the person's is ever written into the query text.
    assert not any("customer-1" in body["query"] or "'C1'" in body["query"] for body in sent)
    assert sent[-1]["query"] == (
        f"SELECT * FROM `{PROJECT}.sales.orders` WHERE customer_id IN UNNEST(@ids)"
    )
    assert sent[-1]["queryParameters"] == [
        {
            "name": "ids",
            "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
            "parameterValue": {"arrayValues": [{"value": "C1"}]},
        }
    ]
    assert {r.path for r in bigquery.requests} == {f"/bigquery/v2/projects/{PROJECT}/queries"}


def test_bigquery_erase_deletes_verifies_and_changes_nothing_the_second_time(bigquery):
    connector = BigQueryConnector(CONFIG)
    erasure = connector.erase(PERSON, {})
    assert (erasure.rows_changed, erasure.remaining) == (3, 0)
    assert erasure.queries[:2] == [
        f"DELETE FROM `{PROJECT}.sales.orders` WHERE customer_id IN UNNEST(@ids)",
        f"DELETE FROM `{PROJECT}.crm.customers` WHERE email = @email",
    ]
    assert [r["customer_id"] for r in bigquery.tables[f"{PROJECT}.sales.orders"].rows] == ["C2"]
    assert [r["email"] for r in bigquery.tables[f"{PROJECT}.crm.customers"].rows] == [
        "customer-2@example.com"
    ]
    again = BigQueryConnector(CONFIG).erase(PERSON, {})
    assert (again.rows_changed, again.remaining) == (0, 0)


def test_bigquery_legal_hold_keeps_the_table_and_names_the_exemption(bigquery):
    hold = "Art. 17(3)(b): invoices kept for the tax authority"
    erasure = BigQueryConnector(CONFIG).erase(PERSON, {"sales.orders": {"hold": hold}})
    assert erasure.holds == {"sales.orders": hold} and erasure.rows_held == 2
    assert erasure.rows_changed == 1 and erasure.remaining == 0
    assert len(bigquery.tables[f"{PROJECT}.sales.orders"].rows) == 3


def test_bigquery_config_refuses_names_that_are_not_identifiers(bigquery):
    with pytest.raises(ConnectorError, match=r"is not dataset\.table"):
        BigQueryConnector({**CONFIG, "tables": {"crm.customers; DROP TABLE x": "email"}})
    with pytest.raises(ConnectorError, match="not a plain identifier"):
        BigQueryConnector({**CONFIG, "tables": {"crm.customers": "email OR 1=1"}})
    with pytest.raises(ConnectorError, match='config needs "project"'):
        BigQueryConnector({**CONFIG, "project": "x"})


def test_bigquery_outage_is_a_connector_error(bigquery):
    """An answer BigQuery gives as an error (here a missing table) is a ConnectorError,
    which the task records and retries."""
    config = {**CONFIG, "tables": {"crm.missing": "email"}}
    with pytest.raises(ConnectorError, match="BigQuery: 404"):
        BigQueryConnector(config).find(PERSON)
    assert "crm.customers: 2 rows" in BigQueryConnector(CONFIG).check()


def test_bigquery_source_access_and_erasure_tasks_run_end_to_end(
    bigquery, make_user, verified_request, privacy_officer
):
    """Registered by an admin, the BigQuery source gets a task of each request; access
    finds the person's rows, erasure deletes them and the verification finds none."""
    data_source_save(
        user=make_user(Role.PORTAL_ADMIN),
        slug="warehouse",
        name="BigQuery warehouse",
        kind=SourceKind.BIGQUERY,
        lookup_key=LookupKey.EMAIL,
        config=CONFIG,
    )
    access = verified_request(email=PERSON.email, kind=RequestKind.ACCESS)
    request_set_state(request=access, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=access, source__slug="warehouse")
    run = source_task_run(task_id=task.pk)
    assert run.task.state == TaskState.DONE and run.task.rows_found == 3
    erasure = verified_request(email=PERSON.email, kind=RequestKind.ERASURE)
    request_set_state(request=erasure, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=erasure, source__slug="warehouse")
    run = source_task_run(task_id=task.pk)
    assert run.task.state == TaskState.DONE, run.task.error
    assert run.task.rows_changed == 3
    assert "verify:" in run.task.query and "-> 0 row(s)" in run.task.query
    remaining = [r["customer_id"] for r in bigquery.tables[f"{PROJECT}.sales.orders"].rows]
    assert remaining == ["C2"]

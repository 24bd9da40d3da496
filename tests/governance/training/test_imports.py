"""Imports of the client's data from the Training pages: the form (data science leads
only), the job a worker runs with its progress, the rejection report on the page, the
refusal past the limit, the audit trail, and the list's query count."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.training.choices import ImportState
from governance.training.models import LakeImport
from governance.training.services import lake_import_run, lake_import_start
from pipelines.lake import list_snapshots
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from portal.audit.selectors import audit_actor_ref_name
from tests.fakes.bigquery_server import FakeBigQueryServer
from tests.governance.training.conftest import TESTER
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db

LIST = reverse("governance:import_list")
NEW = reverse("governance:import_start")
EXPORT = (
    "Invoice,InvoiceDate,Qty\n"
    "1,2024-01-01 10:00,2\n"
    "2,2024-01-02 10:00,-1\n"
    "3,2024-01-03 10:00,4\n"
    "4,2024-01-04 10:00,1\n"
)
MAPPING = "transactions: Invoice=transaction_id, InvoiceDate=ts, Qty=quantity"


@pytest.fixture()
def lake_settings(settings, tmp_path):
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    settings.PIPELINES_IMPORT_ROOT = str(tmp_path / "imports")
    (tmp_path / "imports").mkdir()
    (tmp_path / "imports" / "export.csv").write_text(EXPORT)
    return settings


@pytest.fixture()
def lead(make_user):
    return make_user(Role.DATA_SCIENCE_LEAD)


def _form(path, **extra):
    return {"transactions": str(path), "mapping": MAPPING, "max_rejected_percent": "30", **extra}


def test_lead_imports_from_the_page_and_reads_the_rejection_report(
    client_for, lead, lake_settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """The form queues a job; the worker (run eagerly here) imports it; the job's page
    shows the snapshot and the rejected rows by reason with a sample."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    client = client_for(lead)
    assert 'data-testid="import-form"' in client.get(NEW).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(NEW, _form(tmp_path / "imports" / "export.csv"))
    job = LakeImport.objects.get()
    assert response.status_code == 302 and response["Location"] == job_url(job)
    (snapshot,) = list_snapshots(root=tmp_path / "lake")
    assert (job.state, job.snapshot_id, job.progress) == (ImportState.SUCCEEDED, snapshot.id, 100)
    assert job.requested_by == f"user:{lead.pk}" and job.attempts == 1
    page = client.get(job_url(job)).content.decode()
    assert f'data-testid="import-snapshot">{snapshot.id}' in page
    assert "1 \u00d7 quantity: below 1" in page and "line 3: -1" in page
    assert 'hx-get="' not in page  # finished: no more polling
    actions = list(
        AuditEvent.objects.filter(object_type="lake_import", object_id=str(job.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == ["lake_import.requested", "lake_import.succeeded"]


def job_url(job):
    return reverse("governance:import_detail", args=[job.pk])


def test_import_refused_past_the_limit_stores_nothing_and_says_why(
    client_for, lead, lake_settings, tmp_path
):
    job = lake_import_start(
        sources=[("transactions", str(tmp_path / "imports" / "export.csv"))],
        mapping={
            "transactions": {"Invoice": "transaction_id", "InvoiceDate": "ts", "Qty": "quantity"}
        },
        max_rejected=0.05,
        actor=TESTER,
        queue=False,
    )
    job = lake_import_run(import_id=job.pk)
    assert job.state == ImportState.REFUSED and job.snapshot_id == ""
    assert "1 of 4 rows rejected (25.00%), more than the 5.00% allowed" in job.outcome
    assert job.report["tables"]["transactions"]["rows_rejected"] == 1
    assert list_snapshots(root=tmp_path / "lake") == []
    page = client_for(lead).get(job_url(job)).content.decode()
    assert "more than the 5.00% allowed" in page and 'data-testid="report-transactions"' in page
    event = AuditEvent.objects.get(action="lake_import.refused")
    assert event.payload_record.data["rows_rejected"] == 1


def test_import_run_twice_does_nothing_the_second_time(lake_settings, tmp_path):
    """A redelivered task finds the job finished and leaves it (and the audit) alone."""
    job = lake_import_start(
        sources=[("transactions", str(tmp_path / "imports" / "export.csv"))],
        mapping={
            "transactions": {"Invoice": "transaction_id", "InvoiceDate": "ts", "Qty": "quantity"}
        },
        max_rejected=0.5,
        actor=TESTER,
        queue=False,
    )
    first = lake_import_run(import_id=job.pk)
    again = lake_import_run(import_id=job.pk)
    assert (again.state, again.attempts, again.snapshot_id) == (
        ImportState.SUCCEEDED,
        1,
        first.snapshot_id,
    )
    assert AuditEvent.objects.filter(action="lake_import.succeeded").count() == 1


def test_import_after_a_lost_worker_resumes_and_finds_the_same_snapshot(lake_settings, tmp_path):
    """A job left running by a killed worker is imported again by the redelivered task;
    the lake already holds the content, so no second snapshot appears."""
    job = lake_import_start(
        sources=[("transactions", str(tmp_path / "imports" / "export.csv"))],
        mapping={
            "transactions": {"Invoice": "transaction_id", "InvoiceDate": "ts", "Qty": "quantity"}
        },
        max_rejected=0.5,
        actor=TESTER,
        queue=False,
    )
    first = lake_import_run(import_id=job.pk)
    LakeImport.objects.filter(pk=job.pk).update(state=ImportState.RUNNING, attempts=1)
    resumed = lake_import_run(import_id=job.pk)
    assert resumed.state == ImportState.SUCCEEDED and resumed.attempts == 2
    assert resumed.snapshot_id == first.snapshot_id and not resumed.created_snapshot
    assert len(list_snapshots(root=tmp_path / "lake")) == 1


def test_import_from_a_bigquery_snapshot_records_its_data_version(
    client_for, lead, lake_settings, tmp_path
):
    from datetime import UTC, datetime

    with FakeBigQueryServer() as bigquery:
        lake_settings.BIGQUERY_API_ENDPOINT = bigquery.url
        bigquery.add_table(
            "client-project.sales.tx",
            [
                {"name": "Invoice", "type": "INTEGER"},
                {"name": "InvoiceDate", "type": "TIMESTAMP"},
                {"name": "Qty", "type": "INTEGER"},
            ],
            [
                {"Invoice": i, "InvoiceDate": datetime(2024, 1, i, tzinfo=UTC), "Qty": i}
                for i in range(1, 6)
            ],
        )
        bigquery.add_snapshot(
            "client-project.sales.tx_jan",
            base="client-project.sales.tx",
            snapshot_time=datetime(2024, 2, 1, tzinfo=UTC),
        )
        job = lake_import_start(
            sources=[("transactions", "bq://client-project.sales.tx@tx_jan")],
            mapping={
                "transactions": {
                    "Invoice": "transaction_id",
                    "InvoiceDate": "ts",
                    "Qty": "quantity",
                }
            },
            max_rejected=0.05,
            actor=TESTER,
            queue=False,
        )
        job = lake_import_run(import_id=job.pk)
    assert job.state == ImportState.SUCCEEDED, job.outcome
    assert job.data_version == "bq:client-project.sales.tx_jan@2024-02-01T00:00:00Z"
    page = client_for(lead).get(job_url(job)).content.decode()
    assert f'data-testid="import-data-version">{job.data_version}' in page


def test_import_page_polls_while_the_job_runs(client_for, lead, lake_settings, tmp_path):
    job = lake_import_start(
        sources=[("transactions", str(tmp_path / "imports" / "export.csv"))],
        mapping={},
        max_rejected=0.05,
        actor=TESTER,
        queue=False,
    )
    LakeImport.objects.filter(pk=job.pk).update(
        state=ImportState.RUNNING, progress=40, stage="transactions: 40%"
    )
    progress = reverse("governance:import_progress", args=[job.pk])
    fragment = client_for(lead).get(progress).content.decode()
    assert f'hx-get="{progress}"' in fragment
    assert 'value="40"' in fragment and "transactions: 40%" in fragment


def test_import_form_shows_field_errors(client_for, lead, lake_settings, tmp_path):
    """A file outside the import folder, a malformed BigQuery source, a bad mapping and
    a limit past 100% come back as errors next to their fields; nothing is queued."""
    response = client_for(lead).post(
        NEW,
        {
            "transactions": "/etc/passwd",
            "customers": "bq://sales",
            "mapping": "transactions: InvoiceDate",
            "max_rejected_percent": "150",
        },
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "A local file must be inside the import folder" in body
    assert 'data-testid="error-transactions"' in body and 'data-testid="error-customers"' in body
    assert "bq://sales: expected bq://project.dataset.table[@snapshot]" in body
    assert "is not client_name=lake_name" in body
    assert 'data-testid="error-max_rejected_percent"' in body
    assert not LakeImport.objects.exists()


def test_import_service_refuses_a_missing_transactions_source_and_stray_mapping(lake_settings):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        lake_import_start(
            sources=[("customers", "gs://bucket/customers.csv")],
            mapping={"products": {"Sku": "product_id"}},
            max_rejected=2,
            actor=TESTER,
            queue=False,
        )
    errors = refused.value.message_dict
    assert errors["transactions"] == ["The transactions table is required."]
    assert errors["mapping"] == ["The mapping is for products, which has no source."]
    assert errors["max_rejected"] == ["A share from 0 to 1 (e.g. 0.05)."]
    assert not AuditEvent.objects.filter(action="lake_import.requested").exists()


@pytest.mark.parametrize(
    "repo",
    [
        "file://{outside}",  # a git URL onto this machine, outside the import folder
        "file:///etc",
        "ext::sh -c id",
        "{imports}/../../elsewhere",
        "/etc",
    ],
)
def test_import_refuses_a_dvc_repository_outside_the_import_folder(lake_settings, tmp_path, repo):
    """A DVC source names a git URL (https, ssh) or a repository inside the import
    folder: a file:// URL (which dvc clones like any other) or a transport helper
    would read any git repository on the portal's machine, so they are refused
    before anything is fetched, as a plain local path outside the folder is."""
    from django.core.exceptions import ValidationError

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    uri = "dvc://" + repo.format(outside=outside, imports=tmp_path / "imports") + "@HEAD:tx.csv"
    with pytest.raises(ValidationError) as refused:
        lake_import_start(
            sources=[("transactions", uri)], mapping={}, max_rejected=0.05, actor=TESTER
        )
    assert "inside the import folder" in refused.value.message_dict["transactions"][0]
    assert not LakeImport.objects.exists()


def test_import_run_refuses_a_queued_source_the_rules_now_refuse(lake_settings, tmp_path):
    """A job recorded before the import folder's rule caught its source (here written
    straight into the row, as an older portal let it through) fails at run time,
    naming the rule, and reads nothing."""
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(EXPORT)
    job = lake_import_start(
        sources=[("transactions", str(tmp_path / "imports" / "export.csv"))],
        mapping={},
        max_rejected=0.5,
        actor=TESTER,
        queue=False,
    )
    LakeImport.objects.filter(pk=job.pk).update(
        sources=[{"table": "transactions", "uri": str(outside)}]
    )
    job = lake_import_run(import_id=job.pk)
    assert job.state == ImportState.FAILED
    assert "inside the import folder" in job.outcome
    assert job.snapshot_id in (None, "")
    assert list_snapshots(root=tmp_path / "lake") == []


def test_import_accepts_dvc_git_urls_and_a_repository_in_the_import_folder(lake_settings, tmp_path):
    """The refusal above does not catch the sources the README documents."""
    for repo in (
        "https://git.example/data.git",
        "ssh://git.example/data.git",
        "git@git.example:data.git",
        str(tmp_path / "imports" / "repo"),
    ):
        uri = f"dvc://{repo}@v3:tx.parquet"
        job = lake_import_start(
            sources=[("transactions", uri)],
            mapping={},
            max_rejected=0.05,
            actor=TESTER,
            queue=False,
        )
        assert job.sources == [{"table": "transactions", "uri": uri}]


@pytest.mark.parametrize(
    ("repo", "address"),
    [
        ("https://127.0.0.1/data.git", "127.0.0.1"),
        ("https://localhost:8443/data.git", "127.0.0.1"),
        ("https://10.1.2.3/data.git", "10.1.2.3"),
        ("https://169.254.169.254/computeMetadata.git", "169.254.169.254"),
        ("https://[::1]/data.git", "::1"),
        ("https://[64:ff9b::7f00:1]/data.git", "64:ff9b::7f00:1"),
        ("ssh://git@192.168.0.9:2222/data.git", "192.168.0.9"),
        ("git@172.16.0.4:data.git", "172.16.0.4"),
    ],
)
def test_import_refuses_a_dvc_repository_on_a_private_host(lake_settings, repo, address):
    """A DVC repository's git host that resolves to a loopback, private, link-local or
    NAT64-wrapped address is refused before anything is fetched, naming the address and
    the setting that would allow it, as webhook targets are."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        lake_import_start(
            sources=[("transactions", f"dvc://{repo}@v3:tx.parquet")],
            mapping={},
            max_rejected=0.05,
            actor=TESTER,
        )
    message = refused.value.message_dict["transactions"][0]
    assert f"resolves to {address}" in message and "PIPELINES_DVC_ALLOWED_HOSTS" in message
    assert not LakeImport.objects.exists()


def test_import_accepts_a_private_dvc_host_named_in_the_setting(lake_settings, settings):
    """A git server inside the network is accepted once named in
    PIPELINES_DVC_ALLOWED_HOSTS; other private hosts stay refused."""
    from django.core.exceptions import ValidationError

    settings.PIPELINES_DVC_ALLOWED_HOSTS = ["10.1.2.3"]
    uri = "dvc://https://10.1.2.3/data.git@v3:tx.parquet"
    job = lake_import_start(
        sources=[("transactions", uri)], mapping={}, max_rejected=0.05, actor=TESTER, queue=False
    )
    assert job.sources == [{"table": "transactions", "uri": uri}]
    with pytest.raises(ValidationError, match=r"10\.1\.2\.4"):
        lake_import_start(
            sources=[("transactions", "dvc://https://10.1.2.4/data.git@v3:tx.parquet")],
            mapping={},
            max_rejected=0.05,
            actor=TESTER,
        )


def test_import_run_refuses_a_queued_dvc_source_on_a_private_host(lake_settings, settings):
    """A job queued while its host was allowed fails at run time once the setting no
    longer names it, naming the address, and reads nothing."""
    settings.PIPELINES_DVC_ALLOWED_HOSTS = ["127.0.0.1"]
    job = lake_import_start(
        sources=[("transactions", "dvc://https://127.0.0.1/data.git@v3:tx.parquet")],
        mapping={},
        max_rejected=0.05,
        actor=TESTER,
        queue=False,
    )
    settings.PIPELINES_DVC_ALLOWED_HOSTS = []
    job = lake_import_run(import_id=job.pk)
    assert job.state == ImportState.FAILED
    assert "resolves to 127.0.0.1" in job.outcome


@pytest.mark.parametrize(
    "role", [Role.MODEL_OWNER, Role.DEVOPS, Role.AUDITOR, Role.PRIVACY_OFFICER]
)
def test_import_pages_refuse_other_roles(client_for, make_user, lake_settings, tmp_path, role):
    """Only data science leads (and admins) import or read import reports."""
    job = lake_import_start(
        sources=[("transactions", str(tmp_path / "imports" / "export.csv"))],
        mapping={},
        max_rejected=0.05,
        actor=TESTER,
        queue=False,
    )
    client = client_for(make_user(role))
    assert client.get(LIST).status_code == 403
    assert client.get(NEW).status_code == 403
    assert client.post(NEW, _form(tmp_path / "imports" / "export.csv")).status_code == 403
    assert client.get(job_url(job)).status_code == 403
    assert LakeImport.objects.count() == 1


def test_import_pages_send_anonymous_visitors_to_log_in(client, lake_settings):
    response = client.get(LIST)
    assert response.status_code == 302 and "login" in response["Location"]


def test_import_list_query_count_does_not_grow_with_rows(client_for, lead, lake_settings, tmp_path):
    client = client_for(lead)

    def add(count):
        for _ in range(count):
            lake_import_start(
                sources=[("transactions", "gs://client-exports/export.csv")],
                mapping={},
                max_rejected=0.05,
                actor=TESTER,
                queue=False,
            )

    add(1)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    add(3)
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert response.content.decode().count('data-testid="import-row"') == 4
    assert len(many) == len(few)


def test_run_list_links_to_imports_for_leads_only(client_for, lead, auditor, lake_settings):
    runs = reverse("governance:run_list")
    assert 'data-testid="imports-link"' in client_for(lead).get(runs).content.decode()
    assert 'data-testid="imports-link"' not in client_for(auditor).get(runs).content.decode()


def test_import_form_takes_a_file_name_in_the_import_folder(
    client_for, lead, lake_settings, tmp_path
):
    """The form asks for "a file in the import folder": its bare name (or a path under
    the folder) is read from there, whatever the web server's working directory, and is
    recorded as the full path; a relative name that climbs out of the folder is refused."""
    client = client_for(lead)
    response = client.post(NEW, _form("export.csv"))
    assert response.status_code == 302
    job = LakeImport.objects.get()
    assert job.sources == [
        {"table": "transactions", "uri": str((tmp_path / "imports" / "export.csv").resolve())}
    ]
    (tmp_path / "elsewhere.csv").write_text(EXPORT)
    refused = client.post(NEW, _form("../elsewhere.csv"))
    assert refused.status_code == 400
    assert "A local file must be inside the import folder" in refused.content.decode()
    assert LakeImport.objects.count() == 1


def test_import_page_names_who_asked_for_it(client_for, lead, lake_settings, tmp_path):
    """The import's page names the person who asked for it with their role, as a run's
    page does, not their pseudonymous ledger ref (user:<id>)."""
    job = lake_import_start(
        sources=[("transactions", str(tmp_path / "imports" / "export.csv"))],
        mapping={},
        max_rejected=0.5,
        actor=lead.audit_actor(),
        queue=False,
    )
    page = client_for(lead).get(job_url(job)).content.decode()
    assert f"user:{lead.pk}" not in page
    assert audit_actor_ref_name(f"user:{lead.pk}") in page
    assert "Data science lead" in audit_actor_ref_name(f"user:{lead.pk}")


def test_import_form_lists_the_lake_columns_a_mapping_may_name(client_for, lead, lake_settings):
    """The mapping's help names every lake column per table (held to the lake's schema),
    so a person can write `UnitPrice=unit_price` without reading the code."""
    from governance.training.choices import IMPORT_COLUMNS
    from pipelines.schema import TABLES

    assert {t: tuple(c.name for c in spec.columns) for t, spec in TABLES.items()} == IMPORT_COLUMNS
    page = client_for(lead).get(NEW).content.decode()
    assert (
        "transactions: transaction_id, ts, customer_id, product_id, quantity, unit_price, "
        "amount, promotion, channel" in page
    )
    assert "promotions: promotion_id, category_id, start_date, end_date, discount" in page


def test_form_import_of_a_unit_price_export_computes_amount_and_says_so(
    client_for, lead, lake_settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """The form takes the UCI-style mapping (UnitPrice=unit_price, no amount): the
    snapshot has amount = quantity x unit_price and the job's page says it was computed
    and names a rejected row by its line in the file."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    (tmp_path / "imports" / "retail.csv").write_text(
        "InvoiceNo,InvoiceDate,Quantity,UnitPrice\n"
        "536365,2010-12-01 08:26,6,2.55\n"
        "536366,2010-12-01 08:28,2,abc\n"
        "536367,2010-12-01 08:34,3,1.5\n"
    )
    client = client_for(lead)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            NEW,
            _form(
                "retail.csv",
                mapping="transactions: InvoiceDate=ts, Quantity=quantity, UnitPrice=unit_price",
                max_rejected_percent="50",
            ),
        )
    job = LakeImport.objects.get()
    assert job.state == ImportState.SUCCEEDED
    (snapshot,) = list_snapshots(root=tmp_path / "lake")
    assert snapshot.load()["transactions"]["amount"].tolist() == pytest.approx([15.3, 4.5])
    page = client.get(job_url(job)).content.decode()
    assert "amount: computed as quantity x unit_price" in page
    assert "line 3: abc" in page

"""Fixtures for data subject requests: filing one the way the public form does and
reading the code from the e-mail it sends."""

import re
from datetime import datetime

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from datasubjects.choices import RequestKind
from datasubjects.models import DataSubjectRequest
from datasubjects.services import request_file, request_verify
from portal.accounts.choices import Role

SUBJECT = "customer-1@example.com"


def last_code(to: str) -> str:
    """The code in the last e-mail sent to `to`."""
    for message in reversed(mail.outbox):
        if to in message.to and "verification code" in message.subject:
            return re.search(r"\b(\d{6})\b", message.body).group(1)
    raise AssertionError(f"no code was e-mailed to {to}")


@pytest.fixture()
def file_request(db, django_capture_on_commit_callbacks):
    def file(
        *, email: str = SUBJECT, kind: str = RequestKind.ACCESS, **kwargs
    ) -> DataSubjectRequest:
        with django_capture_on_commit_callbacks(execute=True):
            filed = request_file(kind=kind, email=email, **kwargs)
        return filed.request

    return file


@pytest.fixture()
def verified_request(file_request, django_capture_on_commit_callbacks):
    """A request filed and verified at `at` (a local date and time)."""

    def make(at: datetime | None = None, **kwargs) -> DataSubjectRequest:
        at = at or timezone.localtime()
        if timezone.is_naive(at):
            at = timezone.make_aware(at)
        with time_machine.travel(at, tick=False):
            dsr = file_request(**kwargs)
            with django_capture_on_commit_callbacks(execute=True):
                request_verify(request=dsr, code=last_code(dsr.code_recipient))
        dsr.refresh_from_db()
        return dsr

    return make


@pytest.fixture()
def privacy_officer(make_user):
    return make_user(Role.PRIVACY_OFFICER)


# --- data sources holding a seeded person ---------------------------------------------------


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory):
    """A small lake of the pipelines' own sample data (2,000 transactions)."""
    from pipelines.sample_data import ensure_sample_snapshot

    root = tmp_path_factory.mktemp("lake")
    snapshot = ensure_sample_snapshot(root=root, seed=0, n_transactions=2_000)
    customers = snapshot.load(["customers"])["customers"]
    return root, customers


@pytest.fixture()
def seeded_person(sample_lake):
    """customer C0000001 of the sample data: in the lake and the CRM."""
    _, customers = sample_lake
    row = customers.iloc[0]
    return {"email": row["email"], "customer_id": row["customer_id"]}


@pytest.fixture()
def crm_url(tmp_path, django_db_blocker):
    """A real CRM database: a SQLite file, or a PostgreSQL database of its own when the
    tests run on PostgreSQL (as CI does)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'crm.sqlite3'}"
        return
    import uuid

    import psycopg

    params = connection.settings_dict
    server = (
        f"postgresql://{params['USER']}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
    )
    if params.get("PASSWORD"):
        server = server.replace("@", f":{params['PASSWORD']}@", 1)
    name = f"crm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def registered_sources(db, make_user, sample_lake, crm_url):
    """The lake, the CRM and the portal's own records, registered by a portal admin."""
    from datasubjects.choices import LookupKey, SourceKind
    from datasubjects.sample_crm import sample_crm_create
    from datasubjects.services import data_source_save

    root, customers = sample_lake
    admin = make_user(Role.PORTAL_ADMIN)
    crm_config = sample_crm_create(url=crm_url, customers=customers)
    return [
        data_source_save(
            user=admin,
            slug="lake",
            name="Data lake",
            kind=SourceKind.LAKE,
            lookup_key=LookupKey.CUSTOMER_ID,
            config={
                "root": str(root),
                "tables": {"customers": "customer_id", "transactions": "customer_id"},
                "person_table": "customers",
                "email_column": "email",
            },
        ),
        data_source_save(
            user=admin,
            slug="crm",
            name="CRM",
            kind=SourceKind.SQL,
            lookup_key=LookupKey.EMAIL,
            config=crm_config,
        ),
        data_source_save(
            user=admin,
            slug="portal",
            name="Portal records",
            kind=SourceKind.PORTAL,
            lookup_key=LookupKey.EMAIL,
            config={},
        ),
    ]


@pytest.fixture(autouse=True)
def _private_files(settings, tmp_path):
    """Requests' files (proofs, evidence, packages) go to the test's own folder."""
    settings.DSAR_FILES_DIR = tmp_path / "datasubjects"


@pytest.fixture(autouse=True)
def _suppression_list_file(settings, tmp_path):
    """The suppression list goes to the test's own folder, not beside a real lake."""
    settings.DSAR_SUPPRESSION_LIST = str(tmp_path / "suppression-list" / "suppression.json")

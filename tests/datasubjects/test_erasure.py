"""Erasure: per-field masking and deletion in the CRM, legal holds naming their Art.
17(3) exemption, the verification query, audit payload redaction that still verifies,
and the lineage impact found in the lake."""

import io
import sqlite3

import pytest
from django.db import connection as django_connection
from pypdf import PdfReader

from datasubjects.choices import RequestKind, SourceKind, TaskState
from datasubjects.models import SourceTask
from datasubjects.services import data_source_save, request_set_state, source_task_run
from governance.services.registry import version_register
from pipelines.lake import open_snapshot
from portal.audit.actors import Actor
from portal.audit.models import AuditPayload
from portal.audit.verification import audit_chain_verify
from tests.governance.conftest import registration_body

pytestmark = pytest.mark.django_db

ERASURE_RULES = {
    "crm_contacts": {
        "strategy": "mask",
        "fields": {"email": "hash", "name": "null", "phone": "null"},
    },
    "crm_interactions": {"strategy": "delete"},
}


def _crm_rows(url: str, sql: str, params: tuple) -> list:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(url) as db:
        return db.execute(sql.replace("?", "%s"), params).fetchall()


@pytest.fixture()
def crm_with_rules(registered_sources, make_user):
    crm = registered_sources[1]
    return data_source_save(
        user=make_user("portal_admin"),
        slug="crm",
        name="CRM",
        kind=SourceKind.SQL,
        lookup_key="email",
        config={**crm.config, "erasure": ERASURE_RULES},
    )


def _start_erasure(verified_request, seeded_person, officer):
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    request_set_state(request=dsr, state="in_progress", user=officer)
    return dsr, {t.source.slug: t for t in SourceTask.objects.filter(request=dsr)}


def test_erasure_masks_and_deletes_in_the_crm_and_verifies(
    crm_with_rules, seeded_person, verified_request, privacy_officer
):
    """The contact's e-mail becomes a keyed hash, name and phone NULL, interactions
    deleted; the verification query finds nothing; querying the CRM directly agrees."""
    _dsr, tasks = _start_erasure(verified_request, seeded_person, privacy_officer)
    run = source_task_run(task_id=tasks["crm"].pk)
    assert run.task.state == TaskState.DONE, run.task.error
    assert run.task.rows_changed == 3  # one contact masked, two interactions deleted
    assert "verify:" in run.task.query and "-> 0 row(s)" in run.task.query
    url = crm_with_rules.config["url"]
    cid = seeded_person["customer_id"]
    assert (
        _crm_rows(url, "SELECT * FROM crm_contacts WHERE email = ?", (seeded_person["email"],))
        == []
    )
    assert _crm_rows(url, "SELECT * FROM crm_interactions WHERE customer_id = ?", (cid,)) == []
    (masked,) = _crm_rows(
        url, "SELECT email, name, phone FROM crm_contacts WHERE customer_id = ?", (cid,)
    )
    assert masked[0].startswith("erased:") and masked[1:] == (None, None)


def test_erasure_run_again_after_a_lost_worker_changes_nothing_more(
    crm_with_rules, seeded_person, verified_request, privacy_officer
):
    """A worker killed after erasing (task still running, lease over) is re-run by the
    next one: nothing more changes, the verification still finds nothing."""
    _dsr, tasks = _start_erasure(verified_request, seeded_person, privacy_officer)
    first = source_task_run(task_id=tasks["crm"].pk)
    assert first.task.rows_changed == 3
    SourceTask.objects.filter(pk=first.task.pk).update(state=TaskState.RUNNING, lease_until=None)
    again = source_task_run(task_id=first.task.pk)
    assert again.task.state == TaskState.DONE
    assert again.task.rows_changed == 0 and again.task.attempts == 2


def test_erasure_legal_hold_keeps_rows_and_names_the_exemption(
    crm_with_rules, seeded_person, verified_request, privacy_officer, make_user
):
    """Interactions under a legal hold stay, and the task names the Art. 17(3)
    exemption; the contact is still masked."""
    rules = {**ERASURE_RULES, "crm_interactions": {"hold": "Art. 17(3)(e): a pending complaint"}}
    data_source_save(
        user=make_user("portal_admin"),
        slug="crm",
        name="CRM",
        kind=SourceKind.SQL,
        lookup_key="email",
        config={**crm_with_rules.config, "erasure": rules},
    )
    _dsr, tasks = _start_erasure(verified_request, seeded_person, privacy_officer)
    run = source_task_run(task_id=tasks["crm"].pk)
    assert run.task.state == TaskState.DONE
    assert (run.task.rows_changed, run.task.rows_found) == (1, 3)
    assert "crm_interactions kept: Art. 17(3)(e)" in run.task.note
    url = crm_with_rules.config["url"]
    assert (
        len(
            _crm_rows(
                url,
                "SELECT * FROM crm_interactions WHERE customer_id = ?",
                (seeded_person["customer_id"],),
            )
        )
        == 2
    )


def test_erasure_redacts_audit_payloads_and_the_chain_still_verifies(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """The portal's task redacts the payloads of every event about the person's
    requests; the ledger still verifies, reporting them as redacted."""
    earlier = verified_request(email=seeded_person["email"])
    dsr, tasks = _start_erasure(verified_request, seeded_person, privacy_officer)
    run = source_task_run(task_id=tasks["portal"].pk)
    assert run.task.state == TaskState.DONE and run.task.rows_changed >= 4
    redacted = AuditPayload.objects.filter(
        event__object_id__in=[str(earlier.public_id), str(dsr.public_id)], redacted_at__isnull=False
    )
    assert redacted.count() == run.task.rows_changed
    report = audit_chain_verify()
    assert report.ok, report.summary()
    assert report.redacted >= run.task.rows_changed


def test_erasure_lake_lists_the_model_versions_trained_on_the_person(
    registered_sources, sample_lake, seeded_person, verified_request, privacy_officer, client_for
):
    """A version whose training snapshot is the lake's holds the person: the lake task
    lists it on the request and waits for a person (snapshots are immutable)."""
    root, _ = sample_lake
    snapshot = open_snapshot(root=root)
    version_register(
        model_slug="customer-segmentation",
        data=registration_body("3.1.0", data_version=snapshot.id, metric_slices=None),
        actor=Actor.system("tests"),
    )
    dsr, tasks = _start_erasure(verified_request, seeded_person, privacy_officer)
    run = source_task_run(task_id=tasks["lake"].pk)
    assert run.task.state == TaskState.AWAITING_PERSON
    assert "customer-segmentation 3.1.0" in run.task.note
    dsr.refresh_from_db()
    assert dsr.lineage == [
        {
            "model": "customer-segmentation",
            "version": "3.1.0",
            "snapshot": snapshot.id,
            "rows": run.task.rows_found,
        }
    ]
    page = client_for(privacy_officer).get(f"/data-subjects/{dsr.public_id}/").content.decode()
    assert 'data-testid="lineage"' in page and "3.1.0" in page
    # Each version links to its page, where the flag is.
    assert 'href="/models/customer-segmentation/versions/3.1.0/"' in page


def test_crm_connection_is_postgresql_when_the_tests_are(crm_with_rules):
    """CI runs the CRM on PostgreSQL (the embedded default on SQLite)."""
    url = crm_with_rules.config["url"]
    assert url.startswith(
        "postgresql://" if django_connection.vendor == "postgresql" else "sqlite:"
    )


def test_erasure_certificate_pdf_lists_sources_holds_and_lineage(
    crm_with_rules, seeded_person, verified_request, privacy_officer, client_for, auditor, make_user
):
    """The officer (and the auditor) download a PDF certificate naming each source's
    outcome; a data science lead is refused; an access request has none."""
    dsr, tasks = _start_erasure(verified_request, seeded_person, privacy_officer)
    source_task_run(task_id=tasks["crm"].pk)
    url = f"/data-subjects/{dsr.public_id}/certificate.pdf"
    response = client_for(privacy_officer).get(url)
    assert response.status_code == 200
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "Certificate of erasure" in text and str(dsr.public_id) in text
    assert "CRM" in text and "-> 0 row(s)" in text
    assert client_for(auditor).get(url).status_code == 200
    assert client_for(make_user("data_science_lead")).get(url).status_code == 403
    access = verified_request(email=seeded_person["email"])
    assert (
        client_for(privacy_officer)
        .get(f"/data-subjects/{access.public_id}/certificate.pdf")
        .status_code
        == 404
    )


def test_version_page_flags_the_versions_trained_on_the_erased_person(
    registered_sources, sample_lake, seeded_person, verified_request, privacy_officer, client_for
):
    """The lake task records which versions were trained on the person; each such
    version's page says so and links the request; another version's page does not."""
    from django.urls import reverse

    from datasubjects.models import VersionTrainedOnSubject

    root, _ = sample_lake
    snapshot = open_snapshot(root=root)
    trained, _ = version_register(
        model_slug="customer-segmentation",
        data=registration_body("3.2.0", data_version=snapshot.id, metric_slices=None),
        actor=Actor.system("tests"),
    )
    other, _ = version_register(
        model_slug="customer-segmentation",
        data=registration_body("3.3.0", data_version="sha256:" + "0" * 64, metric_slices=None),
        actor=Actor.system("tests"),
    )
    dsr, tasks = _start_erasure(verified_request, seeded_person, privacy_officer)
    source_task_run(task_id=tasks["lake"].pk)
    (found,) = VersionTrainedOnSubject.objects.all()
    assert (found.version_id, found.request_id, found.snapshot) == (trained.pk, dsr.pk, snapshot.id)
    lead = client_for(privacy_officer)
    page = lead.get(
        reverse("governance:version_detail", args=["customer-segmentation", "3.2.0"])
    ).content.decode()
    assert 'data-testid="subject-flags"' in page
    assert str(dsr.public_id) in page and f"{found.rows} row(s)" in page
    assert seeded_person["email"] not in page
    clean = lead.get(
        reverse("governance:version_detail", args=["customer-segmentation", other.version])
    ).content.decode()
    assert 'data-testid="subject-flags"' not in clean

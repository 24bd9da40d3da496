"""Per-source work: a started request fans out into one task per data source, run by
Celery, each finding the seeded person and keeping evidence; safe to run again."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from datasubjects.choices import RequestKind, SourceKind, TaskState
from datasubjects.models import SourceTask
from datasubjects.services import (
    data_source_check,
    data_source_save,
    request_set_state,
    source_task_record_manual,
    source_task_run,
)
from datasubjects.services.sources import _SourceTaskOutbox
from portal.audit.models import AuditEvent, AuditPayload
from portal.outbox import outbox_claim, outbox_record
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture()
def eager(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


def _start(dsr, officer, capture):
    with capture(execute=True):
        request_set_state(request=dsr, state="in_progress", user=officer)
    return {t.source.slug: t for t in SourceTask.objects.filter(request=dsr)}


def _evidence(task):
    return json.loads((Path(settings.DSAR_FILES_DIR) / task.evidence_file).read_text())


def test_access_request_finds_the_person_in_every_source(
    eager,
    registered_sources,
    seeded_person,
    verified_request,
    privacy_officer,
    django_capture_on_commit_callbacks,
):
    """Starting an access request for customer C0000001 runs one task per source on
    Celery; each is done with the person's rows, the query used, and an evidence file;
    the ledger records counts, not the rows."""
    dsr = verified_request(email=seeded_person["email"])
    tasks = _start(dsr, privacy_officer, django_capture_on_commit_callbacks)
    assert set(tasks) == {"lake", "crm", "portal"}
    for task in tasks.values():
        task.refresh_from_db()
        assert task.state == TaskState.DONE, (task.source.slug, task.error)
    lake = _evidence(tasks["lake"])["tables"]
    assert [row["customer_id"] for row in lake["customers"]] == [seeded_person["customer_id"]]
    assert lake["transactions"]
    assert {row["customer_id"] for row in lake["transactions"]} == {seeded_person["customer_id"]}
    crm = _evidence(tasks["crm"])["tables"]
    assert [row["email"] for row in crm["crm_contacts"]] == [seeded_person["email"]]
    assert len(crm["crm_interactions"]) == 2
    portal = _evidence(tasks["portal"])["tables"]
    assert [r["request"] for r in portal["data_subject_requests"]] == [str(dsr.public_id)]
    assert tasks["lake"].rows_found == 1 + len(lake["transactions"])
    assert "WHERE customer_id IN (C0000001)" in tasks["lake"].query
    assert 'FROM "crm_interactions" WHERE "customer_id" IN' in tasks["crm"].query
    done = AuditEvent.objects.filter(action="dsr.source_task_done", object_id=str(dsr.public_id))
    assert done.count() == 3
    payloads = " ".join(str(p.data) for p in AuditPayload.objects.all())
    assert seeded_person["email"] not in payloads and "@" not in payloads


def test_unknown_person_finds_nothing_anywhere(
    eager, registered_sources, verified_request, privacy_officer, django_capture_on_commit_callbacks
):
    """An address no source knows completes with zero rows in the lake and the CRM."""
    dsr = verified_request(email="nobody-here@example.org")
    tasks = _start(dsr, privacy_officer, django_capture_on_commit_callbacks)
    for slug in ("lake", "crm"):
        tasks[slug].refresh_from_db()
        assert (tasks[slug].state, tasks[slug].rows_found) == ("done", 0)


def test_source_task_run_again_after_done_does_nothing(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """A redelivered message for a done task changes nothing and records nothing."""
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=dsr, source__slug="crm")
    assert source_task_run(task_id=task.pk).ran
    events = AuditEvent.objects.count()
    again = source_task_run(task_id=task.pk)
    assert not again.ran
    assert AuditEvent.objects.count() == events
    task.refresh_from_db()
    assert task.attempts == 1


def test_source_task_killed_worker_is_claimed_again_after_its_lease(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """A task left running by a dead worker is not touched while its lease runs, and is
    run to the same result once the lease is over."""
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=dsr, source__slug="lake")
    SourceTask.objects.filter(pk=task.pk).update(
        state=TaskState.RUNNING, attempts=1, lease_until=timezone.now() + timedelta(minutes=5)
    )
    assert not source_task_run(task_id=task.pk).ran
    SourceTask.objects.filter(pk=task.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    run = source_task_run(task_id=task.pk)
    assert run.ran and run.task.state == TaskState.DONE and run.task.attempts == 2
    assert run.task.rows_found > 1


def test_source_task_run_overtaken_after_its_lease_records_nothing(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """A run still reading when its lease ran out, whose task another run then took
    over and finished, records nothing: the task keeps the other run's result and the
    ledger its one `dsr.source_task_done`."""
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=dsr, source__slug="crm")
    outbox = _SourceTaskOutbox()
    slow = outbox_claim(outbox, task.pk)
    outcome = outbox.send(slow)
    SourceTask.objects.filter(pk=task.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    fast = source_task_run(task_id=task.pk)
    assert fast.ran and fast.task.attempts == 2
    events = AuditEvent.objects.count()

    late = outbox_record(outbox, slow, outcome=outcome)

    assert not late.ran
    task.refresh_from_db()
    assert (task.state, task.attempts) == (TaskState.DONE, 2)
    assert AuditEvent.objects.count() == events
    done = AuditEvent.objects.filter(action="dsr.source_task_done", object_id=str(dsr.public_id))
    assert done.count() == 1


def test_source_task_unreachable_source_fails_and_asks_for_retry(
    registered_sources, seeded_person, verified_request, privacy_officer, make_user, tmp_path
):
    """A CRM whose database file is gone fails the task with the reason and asks the
    worker to retry; the other sources are unaffected."""
    dsr = verified_request(email=seeded_person["email"])
    admin = make_user("portal_admin")
    data_source_save(
        user=admin,
        slug="old-crm",
        name="Old CRM",
        kind=SourceKind.SQL,
        lookup_key="email",
        config={
            "url": f"sqlite:///{tmp_path / 'gone.sqlite3'}",
            "tables": {"contacts": "email"},
            "person_table": "contacts",
        },
    )
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=dsr, source__slug="crm")
    run = source_task_run(task_id=task.pk)
    assert run.retry and run.task.state == TaskState.FAILED
    assert "does not exist" in run.task.error


def test_manual_source_waits_for_a_person_who_records_the_work(
    registered_sources, seeded_person, verified_request, privacy_officer, make_user
):
    """A source without a connector gets a task waiting for a person; the officer's
    note completes it."""
    data_source_save(
        user=make_user("portal_admin"),
        slug="paper",
        name="Paper archive",
        kind=SourceKind.MANUAL,
        lookup_key="email",
        config={},
    )
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    task = SourceTask.objects.get(request=dsr, source__slug="paper")
    assert task.state == TaskState.AWAITING_PERSON
    assert not source_task_run(task_id=task.pk).ran
    task = source_task_record_manual(
        task=task, note="Searched the 2024 binders: none", attachment=None, user=privacy_officer
    )
    assert task.state == TaskState.DONE


def test_rectification_request_starts_no_source_tasks(
    registered_sources, verified_request, privacy_officer
):
    """Only access, portability and erasure fan out to the sources."""
    dsr = verified_request(kind=RequestKind.RECTIFICATION)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    assert not SourceTask.objects.filter(request=dsr).exists()


def test_data_source_check_reports_what_the_source_holds(registered_sources):
    """The connection test names the lake snapshot and counts the CRM's rows."""
    lake, crm, _ = registered_sources
    assert data_source_check(source=lake).message.startswith("snapshot sha256:")
    crm_check = data_source_check(source=crm)
    assert crm_check.ok and "crm_contacts:" in crm_check.message


def test_data_source_save_refuses_bad_identifiers_and_non_admins(make_user, privacy_officer):
    """A table name that is not a plain identifier is a config error; a privacy officer
    may not register sources."""
    from django.core.exceptions import PermissionDenied, ValidationError

    admin = make_user("portal_admin")
    with pytest.raises(ValidationError) as error:
        data_source_save(
            user=admin,
            slug="bad",
            name="Bad",
            kind=SourceKind.SQL,
            lookup_key="email",
            config={"url": "sqlite:///x", "tables": {'x"; DROP TABLE y; --': "email"}},
        )
    assert "config" in error.value.message_dict
    with pytest.raises(PermissionDenied):
        data_source_save(
            user=privacy_officer,
            slug="p",
            name="P",
            kind=SourceKind.PORTAL,
            lookup_key="email",
            config={},
        )

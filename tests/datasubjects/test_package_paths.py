"""A closed request takes no more work in its sources: no task recorded by hand, no
task run by a worker."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from datasubjects.choices import RequestKind, SourceKind, TaskState
from datasubjects.models import SourceTask
from datasubjects.services import (
    data_source_save,
    request_close_duplicate,
    request_refuse,
    request_set_state,
    source_task_record_manual,
    source_task_run,
)
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

NOTE = "Searched the 2024 letter binders: one complaint letter, scanned."
LETTERS = b"date,subject\n2024-03-01,complaint about a delivery\n"


@pytest.fixture()
def paper(registered_sources, make_user):
    """A source without a connector, beside the lake, the CRM and the portal."""
    return data_source_save(
        user=make_user("portal_admin"),
        slug="paper",
        name="Paper archive",
        kind=SourceKind.MANUAL,
        lookup_key="email",
        config={},
    )


def _tasks(dsr) -> dict[str, SourceTask]:
    return {t.source.slug: t for t in SourceTask.objects.filter(request=dsr)}


def _events(dsr, action: str) -> int:
    return AuditEvent.objects.filter(object_id=str(dsr.public_id), action=action).count()


def _url(name: str, dsr, *args) -> str:
    return reverse(f"datasubjects:{name}", args=[dsr.public_id, *args])


@pytest.mark.parametrize("close", ["refuse", "duplicate"])
def test_a_closed_request_refuses_a_manual_record(
    close,
    paper,
    seeded_person,
    verified_request,
    privacy_officer,
    client_for,
    django_capture_on_commit_callbacks,
):
    """Once refused or closed as a duplicate, a task waiting for a person cannot be
    recorded any more, through the service or the page: nothing changes, no event."""
    original = verified_request(email=seeded_person["email"])
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    if close == "refuse":
        request_refuse(request=dsr, reason="Manifestly excessive.", user=privacy_officer)
    else:
        request_close_duplicate(request=dsr, original=original, user=privacy_officer)
    task = _tasks(dsr)["paper"]
    with pytest.raises(ValidationError) as error:
        source_task_record_manual(task=task, note=NOTE, attachment=None, user=privacy_officer)
    assert error.value.error_dict["note"][0].code == "request_closed"
    page = client_for(privacy_officer).post(
        _url("task_record_manual", dsr, task.pk), {"note": NOTE}, follow=True
    )
    state = "refused" if close == "refuse" else "closed as duplicate"
    assert f"This request is {state}: the work in its sources can no longer be recorded." in (
        page.content.decode()
    )
    task.refresh_from_db()
    assert (task.state, task.note, task.finished_at) == (TaskState.AWAITING_PERSON, "", None)
    assert _events(dsr, "dsr.source_task_done") == 0
    assert 'action="' + _url("task_record_manual", dsr, task.pk) not in page.content.decode()


def test_a_refused_erasure_stops_its_pending_tasks(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """A task still queued (or due a retry) when its erasure is refused does nothing
    when a worker picks it up: the CRM keeps the person's rows."""
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    request_refuse(request=dsr, reason="A legal hold covers everything.", user=privacy_officer)
    crm = _tasks(dsr)["crm"]
    run = source_task_run(task_id=crm.pk)
    assert not run.ran
    crm.refresh_from_db()
    assert (crm.state, crm.attempts, crm.rows_changed) == (TaskState.PENDING, 0, None)
    assert _events(dsr, "dsr.source_task_done") == 0

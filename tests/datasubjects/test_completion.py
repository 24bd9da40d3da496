"""Completing a request: refused while a source task is unfinished (unless a privacy
officer closes it by hand with a reason), and the requester is e-mailed what was done
(GDPR Arts. 12(3) and 19)."""

from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse

from datasubjects.choices import RequestKind, SourceKind, TaskState
from datasubjects.models import SourceTask
from datasubjects.services import data_source_save, request_set_state, source_task_run
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

HOLD = "Art. 17(3)(e): a pending complaint"


def _post_state(client, dsr, state):
    return client.post(
        reverse("datasubjects:request_state", args=[dsr.public_id]), {"state": state}, follow=True
    )


def _tasks(dsr):
    return {t.source.slug: t for t in SourceTask.objects.filter(request=dsr)}


def test_completing_with_unfinished_tasks_is_refused_naming_them(
    registered_sources, seeded_person, verified_request, privacy_officer, client_for
):
    """An erasure whose tasks are pending cannot complete: the page says which sources
    are not done, the request stays in progress and keeps the customer ids its tasks
    need; no completion e-mail goes out."""
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    client = client_for(privacy_officer)
    _post_state(client, dsr, "in_progress")
    source_task_run(task_id=_tasks(dsr)["portal"].pk)
    mail.outbox.clear()
    body = _post_state(client, dsr, "completed").content.decode()
    assert "Some sources are not done: CRM (pending), Data lake (pending)." in body
    assert "Portal records" not in body.split("Some sources are not done")[1].split(".")[0]
    dsr.refresh_from_db()
    assert dsr.state == "in_progress" and dsr.customer_ids_sealed
    moves = AuditEvent.objects.filter(object_id=str(dsr.public_id), action="dsr.state_changed")
    assert moves.count() == 1  # the start only (the portal's erasure redacts payloads)
    assert mail.outbox == []


def test_failed_and_waiting_tasks_also_block_completion(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """A failed task and one waiting for a person (the lake's snapshots) block it too."""
    from datasubjects.services import RequestRefused

    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    tasks = _tasks(dsr)
    source_task_run(task_id=tasks["lake"].pk)
    source_task_run(task_id=tasks["portal"].pk)
    SourceTask.objects.filter(pk=tasks["crm"].pk).update(state=TaskState.FAILED)
    with pytest.raises(RequestRefused) as refused:
        request_set_state(request=dsr, state="completed", user=privacy_officer)
    assert refused.value.code == "unfinished_tasks"
    assert "CRM (failed), Data lake (waiting for a person)" in refused.value.message


def test_officer_closes_unfinished_tasks_by_hand_then_completes(
    registered_sources, seeded_person, verified_request, privacy_officer, client_for
):
    """Recording a reason for each unfinished task (the manual path, offered on the
    page for pending tasks too) closes it, audited with the state it was in; then the
    request completes."""
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    client = client_for(privacy_officer)
    _post_state(client, dsr, "in_progress")
    detail = client.get(reverse("datasubjects:request_detail", args=[dsr.public_id]))
    assert "Close CRM by hand: record why" in detail.content.decode()
    for task in _tasks(dsr).values():
        client.post(
            reverse("datasubjects:task_record_manual", args=[dsr.public_id, task.pk]),
            {"note": f"{task.source.name}: erased by the DBA, ticket 42"},
        )
    assert {t.state for t in _tasks(dsr).values()} == {TaskState.DONE}
    events = AuditEvent.objects.filter(object_id=str(dsr.public_id), action="dsr.source_task_done")
    assert [e.payload_record.data["was"] for e in events] == ["pending"] * 3
    _post_state(client, dsr, "completed")
    dsr.refresh_from_db()
    assert dsr.state == "completed" and dsr.customer_ids_sealed == ""


def test_erasure_completion_tells_the_requester_counts_holds_and_status_link(
    registered_sources,
    seeded_person,
    verified_request,
    privacy_officer,
    make_user,
    django_capture_on_commit_callbacks,
):
    """The requester is e-mailed per source what was erased, what a legal hold kept
    with its Art. 17(3) exemption, and the status link; audited with counts only."""
    crm = registered_sources[1]
    rules = {
        "crm_contacts": {"strategy": "mask", "fields": {"email": "hash", "name": "null"}},
        "crm_interactions": {"hold": HOLD},
    }
    data_source_save(
        user=make_user("portal_admin"),
        slug="crm",
        name="CRM",
        kind=SourceKind.SQL,
        lookup_key="email",
        config={**crm.config, "erasure": rules},
    )
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    tasks = _tasks(dsr)
    for task in tasks.values():
        source_task_run(task_id=task.pk)
    from datasubjects.services import source_task_record_manual

    source_task_record_manual(
        task=tasks["lake"], note="Versions retired.", attachment=None, user=privacy_officer
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request_set_state(request=dsr, state="completed", user=privacy_officer)
    (message,) = mail.outbox
    assert message.to == [seeded_person["email"]]
    assert message.subject == "Your erasure request is complete"
    assert "- CRM: 1 record(s) erased or masked; 2 record(s) kept" in message.body
    assert f"Kept (crm_interactions), as GDPR Art. 17(3) allows: {HOLD}" in message.body
    assert "Data lake:" in message.body and "handled by our privacy team" in message.body
    event = AuditEvent.objects.get(object_id=str(dsr.public_id), action="dsr.completion_notified")
    assert event.payload_record.data == {
        "kind": "erasure",
        "subject": dsr.subject_ref,
        "sources": 3,
        "rows_changed": sum(t.rows_changed or 0 for t in _tasks(dsr).values()),
        "rows_held": 2,
        "holds": [HOLD],
    }
    assert seeded_person["email"] not in str(event.payload_record.data)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (RequestKind.RECTIFICATION, "We have corrected the personal data"),
        (RequestKind.RESTRICTION, "no profiling of you takes place"),
        (RequestKind.OBJECTION, "no profiling of you takes place"),
        (RequestKind.PORTABILITY, "What we found, source by source"),
        (RequestKind.ACCESS, "What we found, source by source"),
        (RequestKind.CONSENT_WITHDRAWAL, "Your consent is withdrawn for:"),
    ],
)
def test_every_kind_tells_the_requester_on_completion(
    kind, says, verified_request, privacy_officer, django_capture_on_commit_callbacks, client
):
    """Each kind of request e-mails the requester, on completion, what was done and the
    status link (not only access, refusal and extension); audited. Access and
    portability, with no source registered, still get a package (the Art. 15
    information) and its link."""
    dsr = verified_request(kind=kind)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request_set_state(request=dsr, state="completed", user=privacy_officer)
    (message,) = mail.outbox
    assert message.to == [dsr.email] and message.subject.endswith("request is complete")
    assert says in message.body
    links = [line for line in message.body.splitlines() if line.startswith("http")]
    package_links = [link for link in links if "/privacy/requests/package/" in link]
    assert len(package_links) == (kind in (RequestKind.ACCESS, RequestKind.PORTABILITY))
    (link,) = [link for link in links if "/privacy/requests/status/" in link]
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and "Completed" in page.content.decode()
    assert AuditEvent.objects.filter(
        object_id=str(dsr.public_id), action="dsr.completion_notified"
    ).exists()


def test_closing_as_a_duplicate_tells_the_requester(
    verified_request, privacy_officer, django_capture_on_commit_callbacks, client
):
    """Like a refusal, a request closed as a repeat is not acted on: the requester is
    told which earlier request answers theirs, with this one's status link."""
    from datasubjects.services import request_close_duplicate

    first = verified_request(kind=RequestKind.ACCESS)
    second = verified_request(kind=RequestKind.PORTABILITY)
    request_set_state(request=first, state="in_progress", user=privacy_officer)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request_close_duplicate(request=second, original=first, user=privacy_officer)
    (message,) = mail.outbox
    assert message.to == [second.email]
    assert message.subject == "Your request is closed as a repeat of an earlier one"
    assert (
        "We have closed your data portability (art. 20) request: it repeats your access "
        f"(art. 15) request received on {first.received_on:%-d %B %Y}, which we are answering."
    ) in message.body
    (link,) = [line for line in message.body.splitlines() if line.startswith("http")]
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and "Closed as duplicate" in page.content.decode()


def test_requester_emails_are_plain_text_not_html_escaped(
    verified_request, privacy_officer, django_capture_on_commit_callbacks
):
    """The e-mails are text/plain: what they quote (a reason, a source's name) reads as
    typed, with no HTML entities such as &#x27; for an apostrophe."""
    from datasubjects.services import request_refuse

    dsr = verified_request(email="someone@example.com")
    mail.outbox.clear()
    reason = "We can't tell it's you: \"Q&A\" <none>."
    with django_capture_on_commit_callbacks(execute=True):
        request_refuse(request=dsr, reason=reason, user=privacy_officer)
    body = mail.outbox[-1].body
    assert reason in body
    assert "&#x27;" not in body and "&amp;" not in body and "&quot;" not in body

"""The access package is built whichever path closes a request's last access task: the
worker that ran it, a privacy officer recording a task by hand, the same message
handed to a worker again after a crash; once. An access or portability request never
completes without it, and the requester is e-mailed its link. A closed request takes
no more work in its sources."""

import io
import re
import zipfile

import pytest
from celery import Celery
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from datasubjects.choices import RequestKind, SourceKind, TaskState
from datasubjects.models import DataSubjectRequest, SourceTask
from datasubjects.services import (
    RequestRefused,
    data_source_save,
    package_link_url,
    request_close_duplicate,
    request_refuse,
    request_set_state,
    source_task_record_manual,
    source_task_run,
)
from datasubjects.tasks import run_source_task
from portal.audit.models import AuditEvent
from tests.support.celery_worker import BROKER, celery_workers, wait_for
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db

NOTE = "Searched the 2024 letter binders: one complaint letter, scanned."
LETTERS = b"date,subject\n2024-03-01,complaint about a delivery\n"


@pytest.fixture()
def eager(monkeypatch):
    """Tasks queued on commit run at once in this process, as a worker would run them."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


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


def test_manual_last_task_builds_the_package_and_only_the_requester_downloads_it(
    eager,
    paper,
    seeded_person,
    verified_request,
    privacy_officer,
    client_for,
    client,
    make_user,
    django_capture_on_commit_callbacks,
):
    """The connectors finish first; the page shows the package waiting for the paper
    archive. Recording it by hand (with the scanned export attached) builds the
    package, once, with that file in it; completing e-mails the link, which downloads
    the package for the requester, and for nobody before completion."""
    dsr = verified_request(email=seeded_person["email"])
    officer = client_for(privacy_officer)
    with django_capture_on_commit_callbacks(execute=True):
        officer.post(_url("request_state", dsr), {"state": "in_progress"})
    tasks = _tasks(dsr)
    assert {slug: t.state for slug, t in tasks.items()} == {
        "crm": TaskState.DONE,
        "lake": TaskState.DONE,
        "portal": TaskState.DONE,
        "paper": TaskState.AWAITING_PERSON,
    }
    dsr.refresh_from_db()
    assert dsr.package_file == "" and _events(dsr, "dsr.package_built") == 0
    page = officer.get(_url("request_detail", dsr)).content.decode()
    assert (
        "Access package: 3 of 4 sources done. It is built when the last one is done; "
        "waiting for a person to record the work in Paper archive below." in page
    )
    early_link = package_link_url(request=dsr)

    with django_capture_on_commit_callbacks(execute=True):
        officer.post(
            _url("task_record_manual", dsr, tasks["paper"].pk),
            {"note": NOTE, "attachment": SimpleUploadedFile("letters.CSV", LETTERS)},
        )
    dsr.refresh_from_db()
    assert dsr.package_file and _events(dsr, "dsr.package_built") == 1
    with zipfile.ZipFile(settings.DSAR_FILES_DIR / dsr.package_file) as package:
        assert package.read("paper/paper.access.attachment.csv") == LETTERS
        assert "lake/customers.json" in package.namelist()
        summary = package.read("summary.html").decode()
    assert NOTE in summary and "paper/paper.access.attachment.csv" in summary
    page = officer.get(_url("request_detail", dsr)).content.decode()
    assert 'data-testid="package-download"' in page and "package-progress" not in page
    assert client.get(early_link.removeprefix(settings.PORTAL_BASE_URL)).status_code == 404

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        officer.post(_url("request_state", dsr), {"state": "completed"})
    dsr.refresh_from_db()
    assert dsr.state == "completed" and _events(dsr, "dsr.package_built") == 1
    (message,) = mail.outbox
    assert message.to == [seeded_person["email"]]
    assert message.subject == (
        "Your personal data is ready to download: Your access request is complete"
    )
    assert "- Paper archive: searched by our privacy team" in message.body
    assert _events(dsr, "dsr.completion_notified") == 1
    path = re.search(r"https?://[^/\s]+(/privacy/requests/package/\S+/)", message.body).group(1)
    download = b"".join(client.get(path).streaming_content)
    assert download == (settings.DSAR_FILES_DIR / dsr.package_file).read_bytes()
    assert zipfile.ZipFile(io.BytesIO(download)).read("paper/paper.access.attachment.csv")
    assert client.get(path[:-3] + "xx/").status_code == 404  # a tampered link
    lead = client_for(make_user("data_science_lead"))
    assert lead.get(_url("request_package", dsr)).status_code == 403


def test_a_message_handed_over_again_after_a_crash_builds_the_package_once(
    monkeypatch, registered_sources, seeded_person, verified_request, privacy_officer
):
    """A worker that died after recording the last task, before building the package,
    left every task done and no package: the same message, run again, builds it; a
    third run leaves it alone."""
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.PORTABILITY)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    for task in _tasks(dsr).values():
        source_task_run(task_id=task.pk)  # what the dead worker did
    dsr.refresh_from_db()
    assert dsr.package_file == ""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    lake = _tasks(dsr)["lake"]
    run_source_task.delay(lake.pk)
    dsr.refresh_from_db()
    built = (dsr.package_file, dsr.package_built_at)
    assert built[0] and _events(dsr, "dsr.package_built") == 1
    run_source_task.delay(lake.pk)
    dsr.refresh_from_db()
    assert (dsr.package_file, dsr.package_built_at) == built
    assert _events(dsr, "dsr.package_built") == 1
    assert SourceTask.objects.get(pk=lake.pk).attempts == 1


def test_completing_builds_a_missing_package_or_refuses_saying_why(
    registered_sources,
    seeded_person,
    verified_request,
    privacy_officer,
    django_capture_on_commit_callbacks,
):
    """With every task done and no package (no worker built it), completing builds it
    and e-mails its link; with an evidence file gone it cannot be built, and the
    completion is refused naming the file: the request stays open, nobody is told."""
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    tasks = _tasks(dsr)
    for task in tasks.values():
        source_task_run(task_id=task.pk)
    gone = settings.DSAR_FILES_DIR / SourceTask.objects.get(pk=tasks["crm"].pk).evidence_file
    kept = gone.read_bytes()
    gone.unlink()
    mail.outbox.clear()
    with (
        pytest.raises(RequestRefused) as refused,
        django_capture_on_commit_callbacks(execute=True),
    ):
        request_set_state(request=dsr, state="completed", user=privacy_officer)
    assert refused.value.code == "package_failed"
    assert refused.value.message.startswith(
        "The access package could not be built: the evidence file of CRM, "
        f"requests/{dsr.public_id}/crm.access.json, cannot be read."
    )
    dsr.refresh_from_db()
    assert (dsr.state, dsr.package_file) == ("in_progress", "")
    assert mail.outbox == [] and _events(dsr, "dsr.completion_notified") == 0

    gone.write_bytes(kept)
    with django_capture_on_commit_callbacks(execute=True):
        request_set_state(request=dsr, state="completed", user=privacy_officer)
    dsr.refresh_from_db()
    assert dsr.state == "completed" and dsr.package_file
    (message,) = mail.outbox
    assert "/privacy/requests/package/" in message.body
    assert f"- CRM: {SourceTask.objects.get(pk=tasks['crm'].pk).rows_found} record(s)" in (
        message.body
    )


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


@pytest.fixture()
def worker(transactional_db):
    """One worker process on the test Redis database, sharing the requests' files."""
    with celery_workers(
        {
            "DSAR_FILES_DIR": str(settings.DSAR_FILES_DIR),
            "DSAR_SUPPRESSION_LIST": str(settings.DSAR_SUPPRESSION_LIST),
        },
        loglevel="warning",
    ) as start:
        start()
        yield


@pytest.mark.postgres
@pytest.mark.redis
def test_a_real_worker_builds_the_package_when_it_finishes_the_last_task(
    worker, paper, seeded_person, verified_request, privacy_officer
):
    """The paper archive recorded first, the connectors' tasks handed to a worker on
    Redis (as the web pod queues them): the worker finishing the last one builds the
    package, once."""
    dsr = verified_request(email=seeded_person["email"])
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    tasks = _tasks(dsr)
    source_task_record_manual(task=tasks["paper"], note=NOTE, attachment=None, user=privacy_officer)
    broker = Celery(broker=BROKER)
    for slug in ("crm", "lake", "portal"):
        broker.send_task("datasubjects.run_source_task", args=[tasks[slug].pk])

    def built() -> str:
        return DataSubjectRequest.objects.get(pk=dsr.pk).package_file

    package = wait_for(built, 120, "the worker to build the access package")
    assert {t.state for t in _tasks(dsr).values()} == {TaskState.DONE}
    with zipfile.ZipFile(settings.DSAR_FILES_DIR / package) as archive:
        assert {"crm/crm_contacts.json", "lake/transactions.csv", "summary.html"} <= set(
            archive.namelist()
        )
        assert NOTE in archive.read("summary.html").decode()
    assert _events(dsr, "dsr.package_built") == 1

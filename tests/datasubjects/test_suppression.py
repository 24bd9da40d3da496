"""The suppression list (Art. 21 objection, Art. 18 restriction, Art. 17 erasure): who
is listed, by what, that it outlives the erasure, that it can be lifted, the file the
pipelines and the model server read, and the customer ids found once per request."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from datasubjects.choices import RequestKind, SuppressionReason, TaskState
from datasubjects.models import Suppression
from datasubjects.pseudonyms import customer_ids_unseal, customer_key, suppression_key
from datasubjects.services import request_set_state, source_task_record_manual, source_task_run
from datasubjects.services.sources import request_customers_resolve
from datasubjects.services.suppression import (
    request_suppress,
    suppression_lift,
    suppression_list_write,
)
from governance.services.data_subjects import training_suppression_key, training_suppression_list
from pipelines.suppression import PURPOSES, SuppressionListInvalid, key_id, suppression_read
from pipelines.suppression import customer_key as pipelines_customer_key
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _list_file(settings, tmp_path):
    settings.DSAR_SUPPRESSION_LIST = tmp_path / "lake" / "suppression.json"
    return settings.DSAR_SUPPRESSION_LIST


def _started(verified_request, person, officer, kind):
    dsr = verified_request(email=person["email"], kind=kind)
    request_set_state(request=dsr, state="in_progress", user=officer)
    return dsr


def _finish_tasks(dsr, officer):
    """Run each source task; the ones a person must finish (the lake's immutable
    snapshots) or that failed are recorded by hand, so the request may complete."""
    for task in dsr.tasks.all():
        source_task_run(task_id=task.pk)
    for task in dsr.tasks.exclude(state=TaskState.DONE):
        source_task_record_manual(
            task=task, note="Handled by hand for this test.", attachment=None, user=officer
        )


def test_portal_and_pipelines_hash_customer_ids_alike():
    """The portal's customer key is the pipelines' HMAC with the list's key: the two
    sides must agree or nobody is ever left out."""
    assert customer_key("C0000001") == pipelines_customer_key(suppression_key(), "C0000001")
    assert customer_key("C0000001") != customer_key("C0000002")


def test_objection_lists_the_person_by_customer_key_and_writes_the_file(
    registered_sources,
    seeded_person,
    verified_request,
    privacy_officer,
    django_capture_on_commit_callbacks,
    _list_file,
):
    """Starting an objection puts each customer id of the person on the list, by hash,
    with the reason and the request; the file then leaves them out of training,
    profiling and personalisation, and nobody else."""
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.OBJECTION)
    with django_capture_on_commit_callbacks(execute=True):
        added = request_suppress(request=dsr)
    key = customer_key(seeded_person["customer_id"])
    assert [(s.customer_key, s.reason, s.request_ref) for s in added] == [
        (key, SuppressionReason.OBJECTION, str(dsr.public_id))
    ]
    event = AuditEvent.objects.get(action="suppression.added", object_id=str(dsr.public_id))
    assert event.payload_record.data == {"reason": "objection", "keys": 1}
    written = AuditEvent.objects.filter(action="suppression.list_written").latest("sequence")
    assert written.payload_record.data["keys"] == {
        "personalisation": 1,
        "profiling": 1,
        "training": 1,
    }
    listed = suppression_read(_list_file, key=suppression_key())
    for purpose in PURPOSES:
        assert listed.suppressed(seeded_person["customer_id"], purpose)
        assert not listed.suppressed("C0000002", purpose)
    assert seeded_person["customer_id"] not in _list_file.read_text()


def test_suppressing_twice_adds_nothing(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """A retried task (or a second restriction) leaves one active entry per reason."""
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.RESTRICTION)
    assert len(request_suppress(request=dsr)) == 1
    assert request_suppress(request=dsr) == []
    assert Suppression.objects.filter(lifted_at__isnull=True).count() == 1


def test_a_refused_objection_lists_nobody_when_the_worker_gets_to_it(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """Refused (Art. 21(1): compelling legitimate grounds) after it started but before
    the queued task ran: the task adds no entry and searches no source."""
    from datasubjects.services import request_refuse

    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.OBJECTION)
    request_refuse(request=dsr, reason="Compelling legitimate grounds.", user=privacy_officer)
    assert request_suppress(request=dsr) == []
    dsr.refresh_from_db()
    assert not Suppression.objects.exists() and dsr.customers_found_at is None
    assert not AuditEvent.objects.filter(action="suppression.added").exists()


def test_access_request_cannot_suppress(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.ACCESS)
    with pytest.raises(ValidationError):
        request_suppress(request=dsr)
    assert not Suppression.objects.exists()


def test_list_outlives_the_erasure_with_hashes_only(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """Completing an erasure drops the sealed customer ids from the request; the list
    still names the person by hash and the request by its public id."""
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.ERASURE)
    request_suppress(request=dsr)
    assert customer_ids_unseal(type(dsr).objects.get(pk=dsr.pk).customer_ids_sealed) == [
        seeded_person["customer_id"]
    ]
    _finish_tasks(dsr, privacy_officer)
    request_set_state(request=dsr, state="completed", user=privacy_officer)
    dsr.refresh_from_db()
    assert dsr.customer_ids_sealed == ""
    assert dsr.customer_keys == [customer_key(seeded_person["customer_id"])]
    entry = Suppression.objects.get()
    assert entry.reason == SuppressionReason.ERASURE and entry.lifted_at is None
    assert seeded_person["customer_id"] not in str(entry.__dict__)
    assert seeded_person["email"] not in str(entry.__dict__)


def test_officer_lifts_a_suppression_and_the_file_follows(
    registered_sources,
    seeded_person,
    verified_request,
    privacy_officer,
    auditor,
    django_capture_on_commit_callbacks,
    _list_file,
):
    """Reversible: the officer lifts it with a reason (the row stays, audited); the
    auditor may not; the file no longer lists the person."""
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.OBJECTION)
    (entry,) = request_suppress(request=dsr)
    with pytest.raises(PermissionDenied):
        suppression_lift(suppression=entry, reason="withdrawn", user=auditor)
    with pytest.raises(ValidationError):
        suppression_lift(suppression=entry, reason=" ", user=privacy_officer)
    with django_capture_on_commit_callbacks(execute=True):
        lifted = suppression_lift(
            suppression=entry, reason="The customer withdrew the objection", user=privacy_officer
        )
    assert lifted.lifted_at is not None and Suppression.objects.count() == 1
    event = AuditEvent.objects.get(action="suppression.lifted")
    assert (
        event.object_id == str(dsr.public_id) and event.payload_record.data["reason"] == "objection"
    )
    assert not suppression_read(_list_file, key=suppression_key()).suppressed(
        seeded_person["customer_id"], "training"
    )
    with pytest.raises(ValidationError):
        suppression_lift(suppression=entry, reason="again", user=privacy_officer)


def test_customer_ids_are_searched_once_per_request(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    """The first step searches the sources and keeps the ids (sealed) on the request;
    later steps read them back even when the sources are gone."""
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.ACCESS)
    assert request_customers_resolve(request=dsr) == (seeded_person["customer_id"],)
    dsr.refresh_from_db()
    assert seeded_person["customer_id"] not in dsr.customer_ids_sealed
    for source in registered_sources:
        source.active = False
        source.save()
    assert request_customers_resolve(request=dsr) == (seeded_person["customer_id"],)
    assert AuditEvent.objects.filter(action="dsr.customers_found").count() == 1
    assert AuditEvent.objects.get(action="dsr.customers_found").payload_record.data == {
        "customer_ids": 1
    }


def test_training_hook_writes_the_list_for_a_run(
    registered_sources, seeded_person, verified_request, privacy_officer, _list_file
):
    """Governance's hook (registered by datasubjects) writes the file a run hands its
    pipeline, and audits why it was written."""
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.OBJECTION)
    request_suppress(request=dsr)
    path = training_suppression_list(purpose="training run abc")
    assert path == _list_file
    assert suppression_read(path, key=suppression_key()).suppressed(
        seeded_person["customer_id"], "training"
    )
    event = AuditEvent.objects.filter(action="suppression.list_written").latest("sequence")
    assert event.payload_record.data["for"] == "training run abc"


def test_suppression_page_lists_and_the_officer_lifts(
    registered_sources, seeded_person, verified_request, privacy_officer, auditor, client_for
):
    """Readers see the entries (hashes and request ids only); only the officer lifts."""
    from django.urls import reverse

    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.OBJECTION)
    (entry,) = request_suppress(request=dsr)
    page = client_for(auditor).get(reverse("datasubjects:suppression_list")).content.decode()
    assert str(dsr.public_id) in page and seeded_person["customer_id"] not in page
    lift = reverse("datasubjects:suppression_lift", args=[entry.pk])
    assert client_for(auditor).post(lift, {"reason": "no"}).status_code == 403
    entry.refresh_from_db()
    assert entry.lifted_at is None
    response = client_for(privacy_officer).post(lift, {"reason": "Objection withdrawn"})
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.lift_reason == "Objection withdrawn"
    detail = client_for(auditor).get(f"/data-subjects/{dsr.public_id}/").content.decode()
    assert 'data-testid="dsr-suppressions"' in detail and "(lifted " in detail
    assert 'data-testid="dsr-customers"' in detail
    lifted = client_for(privacy_officer).get(
        reverse("datasubjects:suppression_list"), {"lifted": "1"}
    )
    assert [e.pk for e in lifted.context["page"]] == [entry.pk]


@pytest.mark.parametrize("count", [1, 3])
def test_suppression_page_query_count_is_flat(
    client_for, privacy_officer, django_assert_num_queries, count
):
    from django.urls import reverse

    for n in range(count):
        Suppression.objects.create(customer_key=f"{n:064x}", reason="objection", request_ref="r")
    client = client_for(privacy_officer)
    with django_assert_num_queries(5):
        response = client.get(reverse("datasubjects:suppression_list"))
    assert len(response.context["page"]) == count


def test_erased_person_is_left_out_of_the_next_training_snapshot(
    registered_sources, sample_lake, seeded_person, verified_request, privacy_officer, tmp_path
):
    """Erasure started -> listed -> the list a training run asks for -> the pipeline's
    snapshot step trains on a snapshot without the person (a copy of the lake: the
    shared one stays as it is)."""
    import shutil

    from pipelines.lake import open_snapshot
    from pipelines.steps import RunContext, step_snapshot

    root, _ = sample_lake
    lake = tmp_path / "lake-copy"
    shutil.copytree(root, lake)
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.ERASURE)
    request_suppress(request=dsr)
    ctx = RunContext(
        model_kind="recommendation",
        lake_root=lake,
        artifact_root=tmp_path / "artifacts",
        suppression_path=training_suppression_list(purpose="training run next"),
        suppression_key=training_suppression_key(),
    )
    step_snapshot(ctx)
    assert ctx.snapshot.id != open_snapshot(root=root).id
    assert seeded_person["customer_id"] not in set(
        ctx.tables["transactions"]["customer_id"].astype(str)
    )


def test_an_erasure_entry_is_never_lifted(
    registered_sources, seeded_person, verified_request, privacy_officer
):
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.ERASURE)
    (entry,) = request_suppress(request=dsr)
    with pytest.raises(ValidationError):
        suppression_lift(suppression=entry, reason="came back", user=privacy_officer)
    entry.refresh_from_db()
    assert entry.lifted_at is None


def test_starting_an_objection_lists_the_person_through_the_worker(
    registered_sources,
    seeded_person,
    verified_request,
    privacy_officer,
    monkeypatch,
    django_capture_on_commit_callbacks,
    _list_file,
):
    """The officer starts the request; after commit the `datasubjects.suppress_subject`
    task lists the person and the file follows. Run again, it adds nothing."""
    from datasubjects.tasks import suppress_subject
    from worker.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.OBJECTION)
    with django_capture_on_commit_callbacks(execute=True):
        request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    assert Suppression.objects.filter(request=dsr, lifted_at__isnull=True).count() == 1
    assert suppression_read(_list_file, key=suppression_key()).suppressed(
        seeded_person["customer_id"], "profiling"
    )
    assert suppress_subject.delay(dsr.pk).get() == f"request {dsr.pk}: 0 key(s) listed"


def test_the_list_file_names_its_key_by_id_and_never_holds_it(
    registered_sources, seeded_person, verified_request, privacy_officer, _list_file, settings
):
    """Whoever reads the file cannot test candidate ids: it carries the key's id only;
    a reader with the key reads it, one without (or with another) is refused. The key
    is DSAR_SUPPRESSION_KEY when set."""
    settings.DSAR_SUPPRESSION_KEY = "ab" * 32
    dsr = _started(verified_request, seeded_person, privacy_officer, RequestKind.OBJECTION)
    request_suppress(request=dsr)
    suppression_list_write(purpose="test")
    raw = json.loads(_list_file.read_text())
    assert raw["hash"] == {
        "algorithm": "hmac-sha256",
        "of": "customer_id",
        "key_id": key_id(bytes.fromhex("ab" * 32)),
    }
    assert suppression_key().hex() not in _list_file.read_text()
    assert suppression_read(_list_file, key=bytes.fromhex("ab" * 32)).suppressed(
        seeded_person["customer_id"], "training"
    )
    with pytest.raises(SuppressionListInvalid, match="hashing key"):
        suppression_read(_list_file)
    with pytest.raises(SuppressionListInvalid, match="not the key given"):
        suppression_read(_list_file, key=b"x" * 32)

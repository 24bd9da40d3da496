"""The board's answer to a Cloud Deploy rollout: written to an outbox with the decision,
sent once by the `reviews.clouddeploy_approve` task (run eagerly here) through the real
google-cloud-deploy client to a local Cloud Deploy stand-in."""

import importlib
import io
import threading
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from governance.choices import Target
from governance.reviews.choices import OutboxState, ReviewSource, ReviewState, Verdict
from governance.reviews.clouddeploy_outbox import (
    FORWARD_LEASE_SECONDS,
    FORWARD_MAX_ATTEMPTS,
    forward_backoff_seconds,
    rollout_answer_send,
)
from governance.reviews.models import PubSubMessage, Review, RolloutApprovalOutbox
from governance.reviews.services import (
    review_decide,
    review_open,
    reviews_evidence_changed,
    reviews_expire,
)
from governance.reviews.tasks import clouddeploy_approve
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from tests.factories import ModelVersionFactory, UserFactory
from tests.governance.reviews import test_clouddeploy_hook as hook
from tests.governance.reviews.test_clouddeploy_hook import RELEASE, release_of, required

# The hook tests' fixtures: Google's signing side, Cloud Deploy, the version, pushes.
_fresh_certs_cache = hook._fresh_certs_cache
google = hook.google
cloud = hook.cloud
version = hook.version
deploy = hook.deploy
push = hook.push

DSL = Role.DATA_SCIENCE_LEAD
APPROVE_PATH = r":approve$"


@pytest.fixture()
def eager():
    """Celery runs tasks in-process when queued, retries included (countdowns skipped).

    Eager retries run again only when eager errors do not propagate (with propagation
    on, the Retry itself would be raised); the tests check the outcome in the database.
    """
    from worker.celery import app

    propagates = app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = False, propagates


@pytest.fixture()
def waiting(push, deploy):
    """waiting(rollout_id=...) -> (review, rollout): a rollout to ml-staging waiting for
    approval, and the review its Required message opened."""

    def make(rollout_id: str = "rel-42-to-ml-staging-0001"):
        rollout = deploy(rollout_id)
        response = push(required(rollout, message_id=f"m-{rollout_id}"))
        return Review.objects.get(pk=response.json()["review"]), rollout

    return make


@pytest.fixture()
def decide(django_capture_on_commit_callbacks, eager):
    """decide(review, reviewer, verdict, run_tasks=True): the decision, with the tasks it
    queues on commit run (or, with run_tasks=False, returned unrun)."""

    def make(review, reviewer, verdict=Verdict.APPROVE, *, run_tasks=True, **kwargs):
        with django_capture_on_commit_callbacks(execute=run_tasks) as callbacks:
            review_decide(review=review, reviewer=reviewer, verdict=verdict, role=DSL, **kwargs)
        return callbacks

    return make


def approvals_sent(cloud) -> list:
    return cloud.requests_to("POST", APPROVE_PATH)


def review_audits(review, action: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=action, object_type="review", object_id=str(review.pk))
        .select_related("payload_record")
        .order_by("sequence")
    )


# --- forwarded exactly once ------------------------------------------------------------------


@pytest.mark.django_db
def test_approval_is_forwarded_to_cloud_deploy_exactly_once(waiting, decide, cloud, lead):
    review, rollout = waiting()

    decide(review, lead)

    [approve] = approvals_sent(cloud)
    assert approve.path == f"/v1/{rollout}:approve"
    assert approve.body == {"approved": True}
    assert cloud.rollout(rollout)["approvalState"] == "APPROVED"
    row = RolloutApprovalOutbox.objects.get()
    assert (row.review, row.rollout, row.approved) == (review, rollout, True)
    assert (row.state, row.attempts, row.approval_state) == (OutboxState.SENT, 1, "APPROVED")
    assert row.sent_at is not None and row.last_error == ""
    [queued] = review_audits(review, "review.clouddeploy_queued")
    assert queued.payload_record.data["outcome"] == "approved"
    [forwarded] = review_audits(review, "review.clouddeploy_forwarded")
    assert forwarded.actor_id == "worker"
    assert forwarded.payload_record.data["rollout"] == rollout
    assert forwarded.payload_record.data["approval_state"] == "APPROVED"

    # A second run of the task (at-least-once delivery of the task message) sends nothing.
    assert clouddeploy_approve.apply(args=[row.pk]).get() == OutboxState.SENT
    assert len(approvals_sent(cloud)) == 1
    assert len(review_audits(review, "review.clouddeploy_forwarded")) == 1


@pytest.mark.django_db
def test_task_rereads_the_rollout_before_approving(waiting, decide, cloud, lead):
    review, rollout = waiting()
    before = len(cloud.requests)

    decide(review, lead)

    sent = [(r.method, r.path) for r in cloud.requests[before:]]
    assert sent[:2] == [("GET", f"/v1/{rollout}"), ("POST", f"/v1/{rollout}:approve")]


@pytest.mark.django_db
def test_rejection_is_forwarded_as_approved_false(waiting, decide, cloud, lead):
    review, rollout = waiting()

    decide(review, lead, Verdict.REJECT, comment="The fairness assessment is missing.")

    [approve] = approvals_sent(cloud)
    # proto3 JSON leaves a false boolean out: an empty body is a rejection.
    assert approve.body == {}
    assert cloud.rollout(rollout)["approvalState"] == "REJECTED"
    row = RolloutApprovalOutbox.objects.get()
    assert (row.approved, row.state) == (False, OutboxState.SENT)


@pytest.mark.django_db
def test_expired_review_rejects_the_rollout(
    waiting, cloud, eager, django_capture_on_commit_callbacks
):
    review, rollout = waiting()

    with (
        time_machine.travel(review.expires_at + timedelta(minutes=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert reviews_expire() == 1

    assert Review.objects.get(pk=review.pk).state == ReviewState.EXPIRED
    [approve] = approvals_sent(cloud)
    assert approve.body == {}
    assert cloud.rollout(rollout)["approvalState"] == "REJECTED"


@pytest.mark.django_db
def test_every_rollout_waiting_on_the_review_gets_the_answer(waiting, decide, cloud, lead):
    review, first = waiting("rel-42-to-ml-staging-0001")
    joined, second = waiting("rel-42-to-ml-staging-0002")
    assert joined == review

    decide(review, lead)

    assert sorted(r.path for r in approvals_sent(cloud)) == [
        f"/v1/{first}:approve",
        f"/v1/{second}:approve",
    ]
    assert set(RolloutApprovalOutbox.objects.values_list("state", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_reviews_from_the_portal_forward_nothing(decide, cloud, lead, owner):
    review, _ = review_open(
        version=ModelVersionFactory(),
        target=Target.STAGING,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )

    decide(review, lead)

    assert Review.objects.get(pk=review.pk).state == ReviewState.APPROVED
    assert not RolloutApprovalOutbox.objects.exists()
    assert cloud.requests == []


@pytest.mark.django_db
def test_rollout_waiting_on_an_already_approved_review_is_approved_at_once(
    push, deploy, cloud, version, lead, owner, eager, django_capture_on_commit_callbacks
):
    review, _ = review_open(
        version=version,
        target=Target.STAGING,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    rollout = deploy()

    with django_capture_on_commit_callbacks(execute=True):
        response = push(required(rollout))

    assert response.json()["outcome"] == "review_existing"
    assert response.json()["review"] == review.pk
    [approve] = approvals_sent(cloud)
    assert (approve.path, approve.body) == (f"/v1/{rollout}:approve", {"approved": True})
    assert RolloutApprovalOutbox.objects.get().state == OutboxState.SENT


def by_number(rollout: str) -> str:
    """The rollout's name with the project number, as Cloud Deploy's messages give it."""
    return rollout.replace("projects/zm-ml-prod/", f"projects/{hook.PROJECT_NUMBER}/")


@pytest.mark.django_db
def test_rollout_named_with_the_project_number_is_answered_once(push, deploy, decide, cloud, lead):
    """A message naming the rollout with the project number opens the review under the
    name Cloud Deploy answers with; the same rollout named with the project id joins it,
    and the decision answers the rollout once."""
    rollout = deploy()

    first = push(required(by_number(rollout), message_id="m-number"))
    second = push(required(rollout, message_id="m-id"))

    assert first.status_code == second.status_code == 200
    assert (first.json()["outcome"], second.json()["outcome"]) == (
        "review_opened",
        "review_existing",
    )
    review = Review.objects.get()
    assert review.external_ref == rollout
    assert set(PubSubMessage.objects.values_list("rollout", flat=True)) == {rollout}

    decide(review, lead)

    [approve] = approvals_sent(cloud)
    assert approve.path == f"/v1/{rollout}:approve"
    row = RolloutApprovalOutbox.objects.get()
    assert (row.rollout, row.state) == (rollout, OutboxState.SENT)
    # Pub/Sub delivers another message for it later: nothing more is sent.
    late = push(required(by_number(rollout), message_id="m-late"))
    assert late.status_code == 200
    assert len(approvals_sent(cloud)) == 1
    assert RolloutApprovalOutbox.objects.count() == 1


@pytest.mark.django_db
def test_answer_kept_under_the_project_number_is_found_by_the_project_id(
    waiting, decide, cloud, lead
):
    """An answer already sent for the rollout named with the project number counts for
    the same rollout named with the project id: no second answer."""
    review, rollout = waiting()
    decide(review, lead)
    RolloutApprovalOutbox.objects.update(rollout=by_number(rollout))

    decide(Review.objects.get(pk=review.pk), lead, Verdict.WITHDRAW)
    decide(Review.objects.get(pk=review.pk), UserFactory(roles=[DSL]))

    assert len(approvals_sent(cloud)) == 1
    assert RolloutApprovalOutbox.objects.count() == 1


# --- not forwarded ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_rollout_answered_elsewhere_with_the_boards_answer_is_not_approved_again(
    waiting, decide, cloud, lead
):
    """Cloud Deploy already shows the board's answer (given in its console): nothing is
    sent again, and the row ends sent, confirmed (it cannot be told from our own
    earlier attempt); only another answer there reads as superseded."""
    review, rollout = waiting()
    # Someone approved it in the Cloud Deploy console meanwhile.
    cloud.rollouts[rollout]["approvalState"] = "APPROVED"

    decide(review, lead)

    assert approvals_sent(cloud) == []
    row = RolloutApprovalOutbox.objects.get()
    assert (row.state, row.approval_state) == (OutboxState.SENT, "APPROVED")
    [event] = review_audits(review, "review.clouddeploy_forward_confirmed")
    assert event.payload_record.data["approval_state"] == "APPROVED"
    assert event.payload_record.data["after_retry"] is False
    assert not review_audits(review, "review.clouddeploy_forward_superseded")
    assert not review_audits(review, "review.clouddeploy_forwarded")


@pytest.mark.django_db
def test_rollout_answered_otherwise_elsewhere_is_superseded(waiting, decide, cloud, lead):
    """Cloud Deploy shows another answer than the board's: the row is superseded."""
    review, rollout = waiting()
    cloud.rollouts[rollout]["approvalState"] = "REJECTED"

    decide(review, lead)

    assert approvals_sent(cloud) == []
    row = RolloutApprovalOutbox.objects.get()
    assert (row.state, row.approval_state, row.sent_at) == (
        OutboxState.SUPERSEDED,
        "REJECTED",
        None,
    )
    [event] = review_audits(review, "review.clouddeploy_forward_superseded")
    assert event.payload_record.data["approval_state"] == "REJECTED"
    assert event.payload_record.data["matches_decision"] is False
    assert not review_audits(review, "review.clouddeploy_forward_confirmed")


@pytest.mark.django_db
def test_forward_crashed_after_approving_is_confirmed_sent_on_redelivery(
    waiting, decide, cloud, lead
):
    """A worker killed while `:approve` was in flight (Cloud Deploy approved, nothing
    recorded) leaves the row `sending`; the redelivered task waits out the lease, finds
    the board's own answer in Cloud Deploy and records the row sent, not superseded."""
    review, rollout = waiting()
    callbacks = decide(review, lead, run_tasks=False)
    assert callbacks  # the send task, not run: the worker below dies instead
    row = RolloutApprovalOutbox.objects.get()
    # The dead worker's part: the claim, then the approval reaching Cloud Deploy.
    from governance.reviews.clients import clouddeploy_approvals
    from governance.reviews.clouddeploy_outbox import _answer_claim

    claimed = _answer_claim(row.pk)
    assert claimed.state == OutboxState.SENDING
    clouddeploy_approvals().rollout_approve(rollout, approved=True)
    assert len(approvals_sent(cloud)) == 1

    # Redelivered at once: the lease is still held, so it waits rather than acting.
    early = rollout_answer_send(outbox_id=row.pk)
    assert (early.state, early.retry) == (OutboxState.SENDING, True)
    assert 0 < early.retry_in <= FORWARD_LEASE_SECONDS + 1
    with time_machine.travel(
        timezone.now() + timedelta(seconds=FORWARD_LEASE_SECONDS + 1), tick=False
    ):
        result = rollout_answer_send(outbox_id=row.pk)

    assert (result.state, result.attempts) == (OutboxState.SENT, 2)
    assert len(approvals_sent(cloud)) == 1
    row.refresh_from_db()
    assert (row.state, row.approval_state) == (OutboxState.SENT, "APPROVED")
    assert row.sent_at is not None
    [confirmed] = review_audits(review, "review.clouddeploy_forward_confirmed")
    assert confirmed.payload_record.data["after_retry"] is True
    assert not review_audits(review, "review.clouddeploy_forward_superseded")


@pytest.mark.django_db
def test_answer_is_cancelled_when_the_review_is_sent_back_before_it_goes(
    waiting, decide, cloud, lead
):
    review, _ = waiting()
    callbacks = decide(review, lead, run_tasks=False)
    # The card is edited before the worker picks the task up: the approval is stale.
    reviews_evidence_changed(
        version=review.version, reason="card edited", actor=Actor.system("tests")
    )

    for callback in callbacks:
        callback()

    assert approvals_sent(cloud) == []
    row = RolloutApprovalOutbox.objects.get()
    assert row.state == OutboxState.CANCELLED
    assert "pending" in row.last_error
    # Approved again on the new evidence: now the answer goes, once.
    decide(Review.objects.get(pk=review.pk), lead)
    [approve] = approvals_sent(cloud)
    assert approve.body == {"approved": True}
    assert list(RolloutApprovalOutbox.objects.values_list("state", flat=True)) == [
        OutboxState.CANCELLED,
        OutboxState.SENT,
    ]


# --- failures --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_forwarding_is_retried_after_a_503_then_sent(waiting, decide, cloud, lead):
    review, rollout = waiting()
    cloud.fail("POST", APPROVE_PATH, status=503)

    decide(review, lead)

    first, second = approvals_sent(cloud)
    assert first.body == second.body == {"approved": True}
    assert cloud.rollout(rollout)["approvalState"] == "APPROVED"
    row = RolloutApprovalOutbox.objects.get()
    assert (row.state, row.attempts) == (OutboxState.SENT, 2)
    [forwarded] = review_audits(review, "review.clouddeploy_forwarded")
    assert forwarded.payload_record.data["attempts"] == 2
    assert not review_audits(review, "review.clouddeploy_forward_failed")


@pytest.mark.django_db
def test_forwarding_aborted_by_cloud_deploy_is_retried_then_sent(waiting, decide, cloud, lead):
    """A 409 ABORTED (the rollout changed under the call) is tried again, not final."""
    review, rollout = waiting()
    cloud.fail("POST", APPROVE_PATH, status=409, status_name="ABORTED", message="Etag changed.")

    decide(review, lead)

    assert len(approvals_sent(cloud)) == 2
    assert cloud.rollout(rollout)["approvalState"] == "APPROVED"
    row = RolloutApprovalOutbox.objects.get()
    assert (row.state, row.attempts) == (OutboxState.SENT, 2)
    assert not review_audits(review, "review.clouddeploy_forward_failed")


@pytest.mark.django_db
def test_final_failure_is_audited_and_shown_on_the_review_page(
    waiting, decide, cloud, lead, client_for, django_capture_on_commit_callbacks
):
    review, rollout = waiting()
    cloud.fail("POST", APPROVE_PATH, status=503, times=None)

    decide(review, lead)

    assert len(approvals_sent(cloud)) == FORWARD_MAX_ATTEMPTS
    row = RolloutApprovalOutbox.objects.get()
    assert (row.state, row.attempts) == (OutboxState.FAILED, FORWARD_MAX_ATTEMPTS)
    assert "503" in row.last_error
    [failed] = review_audits(review, "review.clouddeploy_forward_failed")
    assert failed.payload_record.data["rollout"] == rollout
    assert "503" in failed.payload_record.data["error"]
    page = client_for(lead).get(f"/reviews/{review.pk}/").content.decode()
    assert 'data-testid="clouddeploy-failed"' in page
    assert "did not reach Cloud Deploy" in page
    assert rollout in page
    assert f"clouddeploy_outbox_retry {row.pk}" in page

    # Cloud Deploy is back: the operator resends it, and it goes once.
    cloud.clear_failures()
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("clouddeploy_outbox_retry", stdout=out)
    assert "queued 1 answer(s)" in out.getvalue()
    row.refresh_from_db()
    assert (row.state, row.attempts) == (OutboxState.SENT, 1)
    assert cloud.rollout(rollout)["approvalState"] == "APPROVED"
    assert len(review_audits(review, "review.clouddeploy_forward_retried")) == 1
    page = client_for(lead).get(f"/reviews/{review.pk}/").content.decode()
    assert 'data-testid="clouddeploy-failed"' not in page
    assert "Sent" in page


@pytest.mark.django_db
def test_refusal_by_cloud_deploy_fails_without_retrying(waiting, decide, cloud, lead):
    review, _ = waiting()
    cloud.fail("POST", APPROVE_PATH, status=403, message="Permission denied.")

    decide(review, lead)

    assert len(approvals_sent(cloud)) == 1
    row = RolloutApprovalOutbox.objects.get()
    assert (row.state, row.attempts) == (OutboxState.FAILED, 1)
    assert "Permission denied" in row.last_error


@pytest.mark.django_db
def test_missing_google_credentials_fail_the_answer_without_retrying(
    waiting, decide, cloud, lead, settings, monkeypatch, tmp_path
):
    review, _ = waiting()
    settings.CLOUD_DEPLOY_API_ENDPOINT = ""  # Google's own endpoint: credentials needed
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))

    decide(review, lead)

    row = RolloutApprovalOutbox.objects.get()
    assert (row.state, row.attempts) == (OutboxState.FAILED, 1)
    assert "no Google credentials" in row.last_error
    assert approvals_sent(cloud) == []


@pytest.mark.django_db
def test_retry_command_requeues_pending_answers_whose_task_was_lost(
    waiting, decide, cloud, lead, django_capture_on_commit_callbacks
):
    review, _ = waiting()
    decide(review, lead, run_tasks=False)  # the task message never reached a worker
    row = RolloutApprovalOutbox.objects.get()
    out = io.StringIO()
    call_command("clouddeploy_outbox_retry", "--pending-older-than", "10", stdout=out)
    assert "queued 0" in out.getvalue()  # too recent: its task may still be on its way

    with (
        time_machine.travel(timezone.now() + timedelta(minutes=11), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("clouddeploy_outbox_retry", "--pending-older-than", "10", stdout=out)

    row.refresh_from_db()
    assert row.state == OutboxState.SENT
    assert len(approvals_sent(cloud)) == 1


def test_beat_sweep_resends_lost_answers_but_leaves_failed_ones(
    waiting, decide, cloud, lead, django_capture_on_commit_callbacks
):
    from governance.reviews.tasks import clouddeploy_sweep

    review, _ = waiting()
    decide(review, lead, run_tasks=False)  # the task message never reached a worker
    lost = RolloutApprovalOutbox.objects.get()
    # A second rollout of the same version joins the approved review: its answer is
    # queued at once; this one then failed for good.
    with django_capture_on_commit_callbacks(execute=False):
        waiting("rel-42-to-ml-staging-0002")
    failed = RolloutApprovalOutbox.objects.exclude(pk=lost.pk).get()
    RolloutApprovalOutbox.objects.filter(pk=failed.pk).update(state=OutboxState.FAILED)

    assert clouddeploy_sweep.apply().get() == "0 answer(s) queued again"  # too recent
    with (
        time_machine.travel(timezone.now() + timedelta(minutes=91), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert clouddeploy_sweep.apply().get() == "1 answer(s) queued again"
    lost.refresh_from_db()
    failed.refresh_from_db()
    assert lost.state == OutboxState.SENT
    assert failed.state == OutboxState.FAILED


def test_backoff_doubles_from_thirty_seconds_up_to_an_hour():
    assert [forward_backoff_seconds(n) for n in range(1, FORWARD_MAX_ATTEMPTS + 1)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
    ]


# --- two workers at once (PostgreSQL row locks) ------------------------------------------------


@pytest.fixture()
def _default_policies(transactional_db):
    # Transactional tests start from emptied tables: put the migration's defaults back.
    migration = importlib.import_module("governance.reviews.migrations.0002_default_policies")
    migration.create_defaults(apps, None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_sending_one_answer_approve_the_rollout_once(
    _default_policies, cloud, eager, settings
):
    staged = ModelVersionFactory()
    release_of(cloud, staged)
    cloud.add_rollout(RELEASE, "rel-42-to-ml-staging-0001", target_id="ml-staging")
    rollout = f"{RELEASE}/rollouts/rel-42-to-ml-staging-0001"
    requester = UserFactory(roles=[Role.MODEL_OWNER])
    lead = UserFactory(roles=[DSL])
    review, _ = review_open(
        version=staged,
        target=Target.STAGING,
        requested_by_actor=requester.audit_actor(),
        source=ReviewSource.UI,
    )
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    row = RolloutApprovalOutbox.objects.create(review=review, rollout=rollout, approved=True)
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = rollout_answer_send(outbox_id=row.pk)
        except Exception as error:  # the test inspects what each thread got
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert all(not isinstance(r, Exception) for r in results), results
    # No lock is held across the call: the run that did not claim the row either came
    # after (sent) or found it being sent and asks to be retried after the lease.
    assert OutboxState.SENT in {r.state for r in results}
    for result in results:
        if result.state != OutboxState.SENT:
            assert (result.state, result.retry) == (OutboxState.SENDING, True), results
            assert rollout_answer_send(outbox_id=row.pk).state == OutboxState.SENT
    assert len(approvals_sent(cloud)) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts) == (OutboxState.SENT, 1)


def _post_together(url: str, bodies: list[bytes], google) -> list:
    """POST each body signed by Google from its own thread, all released at once; the
    responses (or the exception a thread got), in order."""
    import requests

    barrier = threading.Barrier(len(bodies))
    answers: list = [None] * len(bodies)

    def post(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            answers[index] = requests.post(
                url,
                data=bodies[index],
                headers={
                    "Content-Type": "application/json",
                    "Authorization": google.authorization(),
                },
                timeout=60,
            )
        except Exception as error:  # the test inspects what each push got
            answers[index] = error

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return answers


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_pushes_for_an_approved_rollout_answer_once_without_deadlock(
    _default_policies, cloud, google, eager, live_server
):
    """Three pushes (different message ids) for one rollout of an approved version arrive
    together over HTTP while the send task runs: the lock order (outbox rows before the
    audit chain head, no lock across the call to Cloud Deploy) gives no 500, and the
    rollout gets exactly one answer. The race is run again for several rollouts."""
    staged = ModelVersionFactory()
    release_of(cloud, staged)
    review, _ = review_open(
        version=staged,
        target=Target.STAGING,
        requested_by_actor=UserFactory(roles=[Role.MODEL_OWNER]).audit_actor(),
        source=ReviewSource.UI,
    )
    review_decide(
        review=review, reviewer=UserFactory(roles=[DSL]), verdict=Verdict.APPROVE, role=DSL
    )
    rounds, pushes = 6, 3
    for round_ in range(rounds):
        rollout_id = f"rel-42-to-ml-staging-{round_:04d}"
        cloud.add_rollout(RELEASE, rollout_id, target_id="ml-staging")
        rollout = f"{RELEASE}/rollouts/{rollout_id}"
        answers = _post_together(
            f"{live_server.url}/hooks/clouddeploy",
            [required(rollout, message_id=f"m-{round_}-{n}") for n in range(pushes)],
            google,
        )

        statuses = [getattr(a, "status_code", a) for a in answers]
        assert statuses == [200] * pushes, (round_, [getattr(a, "text", a) for a in answers])
        assert {a.json()["review"] for a in answers} == {review.pk}
        assert len(cloud.requests_to("POST", f"{rollout_id}:approve$")) == 1, round_
        assert cloud.rollout(rollout)["approvalState"] == "APPROVED"
        [row] = RolloutApprovalOutbox.objects.filter(rollout=rollout)
        assert row.state == OutboxState.SENT, (round_, row.state, row.last_error)
    assert len(approvals_sent(cloud)) == rounds

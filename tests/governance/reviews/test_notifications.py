"""Review board notifications: who is e-mailed when a review opens and when it is
decided or expires, and the signed webhooks (to a real local receiver) that carry
pseudonymous ids and portal links, committed with the review or not at all."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.urls import reverse

from governance.choices import Target
from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.models import Review
from governance.reviews.notifications import board_members_needed, review_people_involved
from governance.reviews.services import review_decide, reviews_evidence_changed, reviews_expire
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.notify.models import EmailNotification, WebhookDelivery
from portal.notify.services import webhook_endpoint_create
from tests.portal.notify.receiver import WebhookReceiver

pytestmark = pytest.mark.django_db

DSL, PO, DEVOPS = Role.DATA_SCIENCE_LEAD, Role.PRIVACY_OFFICER, Role.DEVOPS
SECRET = "whsec_review-board-tests-0123456789"


@pytest.fixture(autouse=True)
def local_receivers_allowed(settings):
    """The test receiver listens on 127.0.0.1, which webhooks refuse by default."""
    settings.WEBHOOK_PRIVATE_HOSTS = ["127.0.0.1"]


@pytest.fixture()
def receiver():
    server = WebhookReceiver(SECRET).start()
    yield server
    server.stop()


@pytest.fixture()
def hook(db, receiver):
    """hook("review.opened", ..., format="json") -> an endpoint posting to `receiver`"""

    def make(*events: str, format: str = "json"):
        return webhook_endpoint_create(
            name="board channel",
            url=receiver.url,
            format=format,
            event_types=list(events or ("review.opened", "review.decided", "review.expired")),
            secret=SECRET,
            created_by=None,
            actor=Actor.system("tests"),
        ).endpoint

    return make


@pytest.fixture()
def sent(django_capture_on_commit_callbacks):
    """`with sent():` runs the block, commits, and lets the workers (eagerly) send."""
    from contextlib import contextmanager

    from worker.celery import app

    @contextmanager
    def run():
        before = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            with django_capture_on_commit_callbacks(execute=True):
                yield
        finally:
            app.conf.task_always_eager = before

    return run


def review_link(review: Review) -> str:
    return settings.PORTAL_BASE_URL + reverse("governance:review_detail", args=[review.pk])


def recipients() -> set[str]:
    return {address for message in mail.outbox for address in message.to}


# --- opened ----------------------------------------------------------------------------------


def test_review_opened_emails_the_board_members_it_needs(
    version, open_review, owner, lead, privacy, devops, make_user, sent
):
    make_user(Role.AUDITOR)
    make_user(Role.DEVOPS, is_active=False)
    with sent():
        review = open_review(version)  # production: lead, privacy officer, devops

    assert recipients() == {lead.email, privacy.email, devops.email}
    message = mail.outbox[0]
    assert message.subject == (
        f"[Governance portal] Review {review.pk} needs the board: "
        f"{version.model.slug} {version.version} to production"
    )
    assert review_link(review) in message.body
    assert "data science lead, devops, privacy officer" in message.body
    assert owner.email not in message.body
    assert EmailNotification.objects.filter(state="delivered").count() == 3


def test_review_opened_webhook_is_signed_and_carries_pseudonymous_ids(
    version, open_review, owner, lead, hook, receiver, sent
):
    hook("review.opened")
    with sent():
        review = open_review(version, Target.STAGING)

    (request,) = receiver.requests
    assert request.signature_valid
    assert request.headers["X-Portal-Event"] == "review.opened"
    body = request.json
    assert body["id"] == f"review-{review.pk}-opened"
    assert body["actor"] == f"user:{owner.pk}"
    data = body["data"]
    assert data["review"] == review.pk
    assert data["url"] == review_link(review)
    assert (data["model"], data["version"], data["target"]) == (
        version.model.slug,
        version.version,
        "staging",
    )
    assert data["requested_by"] == f"user:{owner.pk}"
    assert data["required_roles"] == {DSL: 1}
    text = request.body.decode()
    for person in (owner, lead):
        assert person.email not in text and person.full_name not in text


def test_review_open_rolled_back_leaves_no_notifications(
    version, open_review, lead, hook, receiver, sent
):
    hook()
    with sent(), pytest.raises(RuntimeError), transaction.atomic():
        open_review(version)
        assert EmailNotification.objects.exists() and WebhookDelivery.objects.exists()
        raise RuntimeError("the request failed after opening the review")
    assert not Review.objects.exists()
    assert not EmailNotification.objects.exists() and not WebhookDelivery.objects.exists()
    assert mail.outbox == [] and receiver.requests == []


def test_board_members_needed_leaves_out_who_already_decided(
    version, open_review, owner, lead, privacy, devops, make_user
):
    second_lead = make_user(DSL)
    review = open_review(version)
    assert set(board_members_needed(review=review)) == {lead, second_lead, privacy, devops}
    review_decide(
        review=review, reviewer=lead, verdict=Verdict.REQUEST_CHANGES, role=DSL, comment="Fix."
    )
    assert set(board_members_needed(review=review)) == {second_lead, privacy, devops}


# --- decided and expired ---------------------------------------------------------------


def test_review_approved_tells_requester_and_deciders_and_the_webhook(
    version, open_review, owner, lead, privacy, devops, hook, receiver, sent
):
    hook("review.decided")
    review = open_review(version, Target.STAGING)
    mail.outbox.clear()
    with sent():
        outcome = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.state == ReviewState.APPROVED

    assert recipients() == {owner.email, lead.email}
    assert f"Review {review.pk} was approved" in mail.outbox[0].subject
    (request,) = receiver.requests
    assert request.signature_valid
    body = request.json
    assert body["type"] == "review.decided"
    assert body["id"] == f"review-{review.pk}-approved-d{outcome.decision.pk}"
    assert body["actor"] == f"user:{lead.pk}"
    assert body["data"]["state"] == "approved"
    assert body["data"]["previous_state"] == "pending"
    assert body["data"]["approvals"] == [{"role": DSL, "reviewer": f"user:{lead.pk}"}]


def test_review_rejected_emails_only_who_took_part_without_the_comment(
    version, open_review, owner, lead, privacy, devops, hook, receiver, sent
):
    hook(format="slack")
    review = open_review(version)
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    mail.outbox.clear()
    with sent():
        review_decide(
            review=review,
            reviewer=privacy,
            verdict=Verdict.REJECT,
            role=PO,
            comment="Customer e-mail addresses found in the training logs.",
        )

    assert recipients() == {owner.email, lead.email, privacy.email}
    assert set(review_people_involved(review=review)) == {owner, lead, privacy}
    for message in mail.outbox:
        assert "e-mail addresses" not in message.body
        assert review_link(review) in message.body
    (request,) = receiver.requests  # review.opened went out before this block ran
    assert request.signature_valid and request.headers["X-Portal-Event"] == "review.decided"
    slack = request.json
    assert f"Review {review.pk} was rejected" in slack["text"]
    assert review_link(review) in slack["blocks"][0]["text"]["text"]
    assert "e-mail addresses" not in request.body.decode()


def test_review_expired_publishes_review_expired(version, open_review, owner, hook, receiver, sent):
    hook("review.expired")
    review = open_review(version, Target.STAGING)
    mail.outbox.clear()
    with time_machine.travel(review.expires_at + timedelta(minutes=1)), sent():
        assert reviews_expire() == 1

    (request,) = receiver.requests
    assert request.signature_valid
    body = request.json
    assert (body["type"], body["id"]) == ("review.expired", f"review-{review.pk}-expired")
    assert body["actor"] == "system:worker"
    assert body["data"]["state"] == "expired"
    assert recipients() == {owner.email}
    assert "expired without a decision" in mail.outbox[0].subject


def test_review_approved_again_after_changed_evidence_is_a_new_event(
    version, open_review, owner, lead, hook, receiver, sent
):
    hook("review.decided")
    review = open_review(version, Target.STAGING)
    with sent():
        first = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
        reviews_evidence_changed(version=version, reason="card edited", actor=owner.audit_actor())
        second = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)

    assert first.state == second.state == ReviewState.APPROVED
    ids = [json.loads(r.body)["id"] for r in receiver.requests]
    assert ids == [
        f"review-{review.pk}-approved-d{first.decision.pk}",
        f"review-{review.pk}-approved-d{second.decision.pk}",
    ]
    assert (
        EmailNotification.objects.filter(recipient=owner, event_type="review.decided").count() == 2
    )

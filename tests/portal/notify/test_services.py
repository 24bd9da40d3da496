"""Notification services: the outbox written with the caller's transaction, signed
deliveries to a real local receiver, retries with backoff, once-only sending, e-mails,
and the audited endpoint management."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.notify.choices import TEST_EVENT_TYPE, DeliveryState
from portal.notify.models import EmailNotification, WebhookDelivery, WebhookEndpoint
from portal.notify.services import (
    EMAIL_MAX_ATTEMPTS,
    SECRET_PREFIX,
    WEBHOOK_MAX_ATTEMPTS,
    backoff_seconds,
    notification_publish,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_deactivate,
    webhook_endpoint_test,
    webhook_endpoint_update,
)
from portal.notify.tasks import deliver_webhook, requeue_due, send_email
from portal.webhooks import SIGNATURE_HEADER
from tests.portal.notify.conftest import SECRET

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("tests")
T0 = "2025-06-02 10:00:00+00:00"


def publish(event_id="review-7-opened", recipients=(), event_type="review.opened", **kw):
    notification_publish(
        event_type=event_type,
        event_id=event_id,
        summary=kw.pop("summary", "Review 7 needs the board: demand-forecasting 1.2.0"),
        payload=kw.pop("payload", {"review": 7, "url": "http://portal.test/reviews/7/"}),
        email_recipients=recipients,
        actor=kw.pop("actor", ACTOR),
        **kw,
    )


def audit_actions(object_type="webhook_endpoint"):
    return list(
        AuditEvent.objects.filter(object_type=object_type)
        .order_by("sequence")
        .values_list("action", flat=True)
    )


# --- the outbox ----------------------------------------------------------------------------


def test_publish_writes_rows_for_subscribed_active_endpoints_and_active_people(endpoint, make_user):
    subscribed = endpoint(events=["review.opened"])
    endpoint(events=["review.decided"], name="decisions only")
    gone = endpoint(name="old")
    webhook_endpoint_deactivate(endpoint=gone, actor=ACTOR)
    alice, bob = make_user(), make_user()
    left = make_user(is_active=False)

    publish(recipients=[alice, bob, left, alice])

    delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == subscribed
    assert (delivery.event_type, delivery.event_id) == ("review.opened", "review-7-opened")
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == 0
    emails = EmailNotification.objects.order_by("recipient_id")
    assert [e.recipient for e in emails] == [alice, bob]
    assert all(e.state == DeliveryState.PENDING for e in emails)


def test_publish_rolls_back_with_the_callers_transaction(endpoint, make_user):
    endpoint()
    person = make_user()
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(recipients=[person])
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the review could not be saved")
    assert not WebhookDelivery.objects.exists()
    assert not EmailNotification.objects.exists()


def test_publish_same_event_twice_adds_nothing(endpoint, make_user):
    endpoint()
    person = make_user()
    publish(recipients=[person])
    publish(recipients=[person], summary="the same event, published again")
    assert WebhookDelivery.objects.count() == 1
    assert EmailNotification.objects.count() == 1


def test_publish_queues_sending_only_after_commit(
    endpoint, make_user, receiver, eager_tasks, django_capture_on_commit_callbacks
):
    endpoint()
    person = make_user()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        publish(recipients=[person])
    assert len(callbacks) == 1
    assert receiver.requests == [] and mail.outbox == []
    callbacks[0]()
    assert len(receiver.requests) == 1
    assert len(mail.outbox) == 1
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED
    assert EmailNotification.objects.get().state == DeliveryState.DELIVERED


# --- webhook deliveries --------------------------------------------------------------------


def test_delivery_posts_signed_body_with_event_headers(endpoint, receiver):
    endpoint()
    publish()
    delivery = WebhookDelivery.objects.get()

    assert deliver_webhook.apply(args=[delivery.pk]).get() == "delivered"

    (request,) = receiver.requests
    assert request.signature_valid
    assert request.path == "/hooks/portal"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Portal-Event"] == "review.opened"
    assert request.headers["X-Portal-Event-Id"] == "review-7-opened"
    assert request.headers["X-Portal-Delivery"] == str(delivery.pk)
    assert request.headers[SIGNATURE_HEADER].startswith("t=")
    assert request.body == delivery.body.encode()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, "")
    assert delivery.delivered_at is not None


def test_delivery_json_body_is_the_event_envelope(endpoint, receiver):
    endpoint()
    publish(actor=Actor("user", "12"), payload={"review": 7, "url": "http://portal.test/r/7/"})
    deliver_webhook.apply(args=[WebhookDelivery.objects.get().pk])
    body = receiver.requests[0].json
    assert body["id"] == "review-7-opened"
    assert body["type"] == "review.opened"
    assert body["actor"] == "user:12"
    assert body["summary"].startswith("Review 7 needs the board")
    assert body["data"] == {"review": 7, "url": "http://portal.test/r/7/"}
    assert "occurred_at" in body


def test_delivery_slack_format_is_text_and_blocks(endpoint, receiver):
    endpoint(format="slack")
    publish(summary="Review 7 was approved: <demand-forecasting> & co")
    deliver_webhook.apply(args=[WebhookDelivery.objects.get().pk])

    (request,) = receiver.requests
    assert request.signature_valid
    body = request.json
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "Review 7 was approved: <demand-forecasting> & co"
    section = body["blocks"][0]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    # Slack's mrkdwn escaping, then the link in Slack's <url|label> form
    assert section["text"]["text"] == (
        "Review 7 was approved: &lt;demand-forecasting&gt; &amp; co\n"
        "<http://portal.test/reviews/7/|Open in the governance portal>"
    )
    assert "review.opened" in body["blocks"][1]["elements"][0]["text"]


def test_delivery_answered_500_then_200_is_retried_and_delivered_once(
    endpoint, receiver, eager_tasks
):
    endpoint()
    receiver.answer(500, 200)
    with time_machine.travel(T0, tick=False) as clock:
        publish()
        delivery = WebhookDelivery.objects.get()

        # First attempt fails; the queued retry (run at once, eagerly) is not due yet.
        assert deliver_webhook.apply(args=[delivery.pk]).get() == "retry"
        delivery.refresh_from_db()
        assert delivery.state == DeliveryState.PENDING
        assert (delivery.attempts, delivery.last_status_code) == (1, 500)
        assert delivery.last_error.startswith("HTTP 500")
        assert delivery.next_attempt_at == timezone.now() + timedelta(seconds=30)
        assert len(receiver.requests) == 1

        clock.shift(timedelta(seconds=20))
        assert deliver_webhook.apply(args=[delivery.pk]).get() == "skipped"
        assert len(receiver.requests) == 1

        clock.shift(timedelta(seconds=10))
        assert deliver_webhook.apply(args=[delivery.pk]).get() == "delivered"

        clock.shift(timedelta(hours=1))
        assert deliver_webhook.apply(args=[delivery.pk]).get() == "skipped"
    assert len(receiver.requests) == 2
    assert all(r.signature_valid for r in receiver.requests)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_delivery_answered_with_a_client_error_fails_without_retry(endpoint, receiver, status):
    endpoint()
    receiver.answer(status)
    publish()
    delivery = WebhookDelivery.objects.get()
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "failed"
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert deliver_webhook.apply(args=[delivery.pk]).get() == "skipped"
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (
        "failed",
        1,
        status,
    )


@pytest.mark.parametrize("status", [408, 429, 502, 503])
def test_delivery_answered_busy_or_broken_is_retried(endpoint, receiver, status):
    endpoint()
    receiver.answer(status)
    publish()
    delivery = WebhookDelivery.objects.get()
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "retry"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING and delivery.last_status_code == status


def test_delivery_to_an_unreachable_receiver_is_retried(endpoint, closed_port):
    endpoint(url=f"http://127.0.0.1:{closed_port}/hook")
    publish()
    delivery = WebhookDelivery.objects.get()
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "retry"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING
    assert delivery.last_status_code is None
    assert "ConnectionError" in delivery.last_error


def test_delivery_backs_off_exponentially_then_fails(endpoint, receiver, eager_tasks):
    endpoint()
    receiver.answer(*([503] * WEBHOOK_MAX_ATTEMPTS))
    with time_machine.travel(T0, tick=False) as clock:
        publish()
        delivery = WebhookDelivery.objects.get()
        waits = []
        for _ in range(WEBHOOK_MAX_ATTEMPTS):
            outcome = deliver_webhook.apply(args=[delivery.pk]).get()
            delivery.refresh_from_db()
            if outcome == "retry":
                waits.append((delivery.next_attempt_at - timezone.now()).total_seconds())
                clock.move_to(delivery.next_attempt_at)
    assert outcome == "failed"
    assert waits == [30, 60, 120, 240, 480, 960, 1920]
    assert waits == [backoff_seconds(n) for n in range(1, WEBHOOK_MAX_ATTEMPTS)]
    assert (delivery.state, delivery.attempts) == ("failed", WEBHOOK_MAX_ATTEMPTS)
    assert len(receiver.requests) == WEBHOOK_MAX_ATTEMPTS


def test_delivery_held_by_another_attempt_is_not_posted_twice(endpoint, receiver):
    """A worker mid-attempt pushes next_attempt_at a lease ahead; a duplicate message
    (the sweep, a redelivered message) finds it not due and leaves it alone."""
    endpoint()
    publish()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=1, next_attempt_at=timezone.now() + timedelta(seconds=120)
    )
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "skipped"
    assert receiver.requests == []


def test_delivery_to_a_deactivated_endpoint_fails_without_posting(endpoint, receiver):
    target = endpoint()
    publish()
    webhook_endpoint_deactivate(endpoint=target, actor=ACTOR)
    delivery = WebhookDelivery.objects.get()
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "skipped"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and "deactivated" in delivery.last_error
    assert receiver.requests == []


def test_delivery_signed_with_a_wrong_secret_is_refused_by_the_receiver(endpoint, receiver):
    endpoint(secret="whsec_not-the-receivers-secret")
    publish()
    delivery = WebhookDelivery.objects.get()
    assert deliver_webhook.apply(args=[delivery.pk]).get() == "failed"
    assert not receiver.requests[0].signature_valid
    delivery.refresh_from_db()
    assert delivery.last_status_code == 401


def test_delivery_of_an_unknown_id_does_nothing(db):
    assert deliver_webhook.apply(args=[987654]).get() == "skipped"


def test_requeue_due_hands_over_due_rows_only(endpoint, receiver, make_user, eager_tasks):
    endpoint()
    person = make_user()
    publish(recipients=[person])
    publish(event_id="review-8-opened")
    later = WebhookDelivery.objects.get(event_id="review-8-opened")
    WebhookDelivery.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )

    assert requeue_due.apply().get() == {"deliveries": 1, "emails": 1}

    assert [r.json["id"] for r in receiver.requests] == ["review-7-opened"]
    assert len(mail.outbox) == 1
    later.refresh_from_db()
    assert later.state == DeliveryState.PENDING and later.attempts == 0


# --- e-mails ---------------------------------------------------------------------------------


def test_send_email_sends_once_with_a_link_not_the_details(make_user):
    person = make_user(email="board.member@zeromargin.example")
    publish(recipients=[person], email_text="It needs approval from: devops.")
    notification = EmailNotification.objects.get()

    assert send_email.apply(args=[notification.pk]).get() == "delivered"
    assert send_email.apply(args=[notification.pk]).get() == "skipped"

    (message,) = mail.outbox
    assert message.to == ["board.member@zeromargin.example"]
    assert message.subject == (
        "[Governance portal] Review 7 needs the board: demand-forecasting 1.2.0"
    )
    assert "It needs approval from: devops." in message.body
    assert "http://portal.test/reviews/7/" in message.body
    assert message.extra_headers["X-Portal-Event"] == "review.opened"
    notification.refresh_from_db()
    assert notification.state == DeliveryState.DELIVERED and notification.sent_at is not None
    assert notification.attempts == 1


def test_send_email_retries_while_the_mail_server_is_away(make_user, settings, closed_port, caplog):
    """Each failed attempt is retried with backoff; the last one fails the e-mail and
    says so in the log once."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port
    settings.EMAIL_TIMEOUT = 2
    person = make_user()
    with time_machine.travel(T0, tick=False) as clock:
        publish(recipients=[person])
        notification = EmailNotification.objects.get()
        outcomes = []
        for _ in range(EMAIL_MAX_ATTEMPTS):
            outcomes.append(send_email.apply(args=[notification.pk]).get())
            clock.shift(timedelta(hours=2))
    assert outcomes == ["retry"] * (EMAIL_MAX_ATTEMPTS - 1) + ["failed"]
    notification.refresh_from_db()
    assert notification.state == DeliveryState.FAILED
    assert "Connection" in notification.last_error
    failed_lines = [r for r in caplog.records if "failed:" in r.getMessage()]
    assert [r.getMessage() for r in failed_lines] == [
        f"e-mail notification {notification.pk} failed: {notification.last_error}"
    ]


def test_send_email_to_a_deactivated_person_fails_without_sending(make_user):
    person = make_user()
    publish(recipients=[person])
    person.is_active = False
    person.save()
    notification = EmailNotification.objects.get()
    assert send_email.apply(args=[notification.pk]).get() == "skipped"
    notification.refresh_from_db()
    assert notification.state == DeliveryState.FAILED
    assert mail.outbox == []


# --- endpoints ----------------------------------------------------------------------------------


def test_endpoint_create_makes_a_secret_and_audits_without_it(admin_user):
    created = webhook_endpoint_create(
        name="board channel",
        url="https://hooks.slack.example/services/T0/B0/very-secret-path",
        format="slack",
        event_types=["review.decided", "review.opened"],
        created_by=admin_user,
        actor=admin_user.audit_actor(),
    )
    assert created.secret.startswith(SECRET_PREFIX) and len(created.secret) > 40
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == created.secret
    assert endpoint.event_types == ["review.decided", "review.opened"]
    assert endpoint.created_by == admin_user
    assert endpoint.secret_masked.endswith(created.secret[-4:])
    assert created.secret not in endpoint.secret_masked
    assert endpoint.url_shown == "https://hooks.slack.example/…"
    event = AuditEvent.objects.get(object_type="webhook_endpoint")
    assert event.action == "webhook.created"
    payload = json.dumps(event.payload_record.data)
    assert created.secret not in payload and "very-secret-path" not in payload
    assert event.payload_record.data["host"] == "hooks.slack.example"
    assert event.payload_record.data["secret_pasted"] is False


def test_endpoint_create_keeps_a_pasted_secret(db):
    created = webhook_endpoint_create(
        name="ticketing",
        url="https://tickets.example/hook",
        format="json",
        event_types=["review.expired"],
        secret="receivers-own-secret-123",
        created_by=None,
        actor=ACTOR,
    )
    assert created.endpoint.secret == created.secret == "receivers-own-secret-123"


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"name": " "}, "name"),
        ({"url": "ftp://files.example/hook"}, "url"),
        ({"format": "xml"}, "format"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["review.exploded"]}, "event_types"),
        ({"secret": "short"}, "secret"),
    ],
)
def test_endpoint_create_refuses_bad_fields(db, fields, error_field):
    values = {
        "name": "board",
        "url": "https://hooks.example/x",
        "format": "json",
        "event_types": ["review.opened"],
        "secret": "",
    }
    with pytest.raises(ValidationError) as refused:
        webhook_endpoint_create(**{**values, **fields}, created_by=None, actor=ACTOR)
    assert error_field in refused.value.message_dict
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_update_changes_fields_and_audits_what_changed(endpoint):
    target = endpoint()
    webhook_endpoint_update(
        endpoint=target,
        name="board channel",
        url=target.url,
        format="slack",
        event_types=["review.decided"],
        actor=ACTOR,
    )
    target.refresh_from_db()
    assert (target.format, target.event_types) == ("slack", ["review.decided"])
    assert target.secret == SECRET
    event = AuditEvent.objects.filter(action="webhook.updated").get()
    assert event.payload_record.data["changed"] == ["format", "event_types"]


def test_endpoint_deactivate_audits_and_refuses_twice(endpoint):
    target = endpoint()
    webhook_endpoint_deactivate(endpoint=target, actor=ACTOR)
    target.refresh_from_db()
    assert not target.active and target.deactivated_at is not None
    with pytest.raises(ValidationError):
        webhook_endpoint_deactivate(endpoint=target, actor=ACTOR)
    with pytest.raises(ValidationError):
        webhook_endpoint_update(
            endpoint=target,
            name="x",
            url=target.url,
            format="json",
            event_types=["review.opened"],
            actor=ACTOR,
        )
    assert audit_actions() == ["webhook.created", "webhook.deactivated"]


def test_endpoint_test_event_reaches_the_receiver(
    endpoint, receiver, eager_tasks, django_capture_on_commit_callbacks
):
    target = endpoint(events=["review.expired"])
    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhook_endpoint_test(endpoint=target, actor=ACTOR)
    (request,) = receiver.requests
    assert request.signature_valid
    assert request.headers["X-Portal-Event"] == TEST_EVENT_TYPE
    assert request.json["type"] == TEST_EVENT_TYPE
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert audit_actions()[-1] == "webhook.test_sent"


def test_delivery_resend_gives_a_failed_delivery_a_new_run(
    endpoint, receiver, eager_tasks, django_capture_on_commit_callbacks
):
    endpoint()
    receiver.answer(404)
    publish()
    delivery = WebhookDelivery.objects.get()
    deliver_webhook.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        webhook_delivery_resend(delivery=delivery, actor=ACTOR)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    assert [r.json["id"] for r in receiver.requests] == ["review-7-opened"] * 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert audit_actions()[-1] == "webhook.delivery_resent"
    with pytest.raises(ValidationError, match="Only a failed delivery"):
        webhook_delivery_resend(delivery=delivery, actor=ACTOR)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.20.0.5/hook",
        "http://169.254.169.254/computeMetadata/v1/",
        "http://[::1]:8080/hook",
        "http://localhost/hook",
        # IPv6 forms that carry a private IPv4 address ipaddress calls global or not:
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 to 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/computeMetadata/v1/",  # NAT64 to the metadata server
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
    ],
)
def test_webhook_to_a_private_address_is_refused_at_creation(settings, db, url):
    settings.WEBHOOK_PRIVATE_HOSTS = []
    with pytest.raises(ValidationError) as excinfo:
        webhook_endpoint_create(
            name="internal",
            url=url,
            format="json",
            event_types=["review.opened"],
            created_by=None,
            actor=Actor.system("test"),
        )
    assert "private or local address" in str(excinfo.value.message_dict["url"])


def test_delivery_to_a_host_turned_private_fails_without_posting(
    settings, endpoint, receiver, django_capture_on_commit_callbacks
):
    """An endpoint accepted while allowed, then no longer allowed: the attempt is
    refused for good and nothing reaches the receiver."""
    hook = endpoint()
    settings.WEBHOOK_PRIVATE_HOSTS = []
    with django_capture_on_commit_callbacks(execute=True):
        notification_publish(
            event_type="review.opened",
            event_id="review-1-opened",
            summary="Review opened",
            payload={"review": 1},
            email_recipients=[],
            actor=Actor.system("test"),
        )
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    assert delivery.state == DeliveryState.FAILED
    assert "private or local address" in delivery.last_error
    assert receiver.requests == []

"""Writes for notifications: publishing an event to the outbox, sending what is in it,
and the admin's endpoint management.

Sending is at least once, never twice after success is recorded. An attempt first
claims its row (locked, still pending, due) and pushes `next_attempt_at` one lease
ahead, commits, then talks to the outside server with no lock held, and records the
outcome under the lock again. Holding the row lock across a 10-second POST would have
been simpler, but on SQLite (the demo's database) a write transaction locks the whole
database. A worker that dies between the POST and the record leaves the lease to run
out; the sweep then tries again, so receivers deduplicate on the event id.
"""

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from kombu.exceptions import OperationalError

from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.notify.choices import TEST_EVENT_TYPE, DeliveryState, EventType, WebhookFormat
from portal.notify.clients import webhook_post, webhook_url_refusal
from portal.notify.models import EmailNotification, WebhookDelivery, WebhookEndpoint
from portal.webhooks import SIGNATURE_HEADER, webhook_signature_header

logger = logging.getLogger(__name__)

AUDIT_OBJECT_TYPE = "webhook_endpoint"
SECRET_PREFIX = "whsec_"  # noqa: S105  # nosec B105  # a public marker, not a secret
SECRET_MIN_LENGTH = 16

WEBHOOK_MAX_ATTEMPTS = 8
EMAIL_MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 30
# Longer than the POST's timeout (and an SMTP conversation): while it runs, a second
# worker handed the same row leaves it alone.
ATTEMPT_LEASE = timedelta(seconds=120)
# Workers' clocks differ a little; a wake-up this early still counts as due.
CLOCK_SLACK = timedelta(seconds=5)
# Worth asking again: the receiver timed out, is rate limiting, or is broken for now.
RETRYABLE_STATUS_CODES = frozenset({408, 429})

USER_AGENT = "zero-margin-governance-portal-webhooks/1"


def backoff_seconds(attempts: int) -> int:
    """How long to wait after the `attempts`-th failed attempt: 30 s, 60 s, 120 s..."""
    return BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1)


def _actor_ref(actor: Actor) -> str:
    return f"{actor.type}:{actor.id}" if actor.id else str(actor.type)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_body(
    *,
    format: str,
    event_type: str,
    event_id: str,
    summary: str,
    payload: dict[str, Any],
    actor: Actor,
    occurred_at: Any,
) -> str:
    """The JSON text an endpoint receives for an event.

    json: `{"id", "type", "occurred_at", "actor", "summary", "data"}`.
    slack: `{"text", "blocks"}` as Slack's incoming webhooks take it, linking to
    `payload["url"]` when there is one.
    """
    if format == WebhookFormat.SLACK:
        url = payload.get("url", "")
        line = _slack_escape(summary)
        if url:
            line = f"{line}\n<{url}|Open in the governance portal>"
        document: dict[str, Any] = {
            "text": summary,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": line}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"`{event_type}` · event {event_id}"}],
                },
            ],
        }
    else:
        document = {
            "id": event_id,
            "type": event_type,
            "occurred_at": occurred_at,
            "actor": _actor_ref(actor),
            "summary": summary,
            "data": payload,
        }
    return json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False)


def _email_body(*, summary: str, url: str, email_text: str) -> str:
    return render_to_string(
        "notify/email/notification.txt",
        {"summary": summary, "url": url, "email_text": email_text},
    )


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


# --- publishing ----------------------------------------------------------------------------


def _queue(task: Any, pk: int, countdown: int | None = None) -> None:
    """Hand a row to the workers. A broker that is away loses nothing: the row stays
    pending and the sweep (`notify.requeue_due`) hands it over again."""
    try:
        task.apply_async(args=[pk], countdown=countdown)
    except OperationalError:
        logger.warning("broker unavailable; %s(%s) waits for the sweep", task.name, pk)


def _queue_on_commit(*, delivery_ids: list[int], email_ids: list[int]) -> None:
    def queue() -> None:
        from portal.notify.tasks import deliver_webhook, send_email

        for pk in delivery_ids:
            _queue(deliver_webhook, pk)
        for pk in email_ids:
            _queue(send_email, pk)

    if delivery_ids or email_ids:
        transaction.on_commit(queue, robust=True)


def notification_publish(
    *,
    event_type: str,
    event_id: str,
    summary: str,
    payload: dict[str, Any],
    email_recipients: Iterable[User],
    actor: Actor,
    email_text: str = "",
) -> None:
    """Announce an event: to every active endpoint subscribed to `event_type`, and by
    e-mail to `email_recipients` (inactive people are skipped).

    Call it inside the transaction of the change it announces: the rows commit or roll
    back with it. `event_id` is the idempotency key: publishing the same event again
    adds nothing for an endpoint or a person that already has it. `payload` holds
    pseudonymous ids and portal URLs only (`payload["url"]` is the link e-mails and
    Slack messages carry); e-mail bodies are the summary, `email_text` and that link.
    Side effects: WebhookDelivery and EmailNotification rows (pending); after commit,
    `notify.deliver_webhook` and `notify.send_email` are queued for them.
    """
    now = timezone.now()
    event_id = event_id[:200]
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(active=True).order_by("pk")
        if endpoint.subscribes_to(event_type)
    ]
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                event_type=event_type,
                event_id=event_id,
                body=webhook_body(
                    format=endpoint.format,
                    event_type=event_type,
                    event_id=event_id,
                    summary=summary,
                    payload=payload,
                    actor=actor,
                    occurred_at=now,
                ),
                created_at=now,
                next_attempt_at=now,
            )
            for endpoint in endpoints
        ],
        ignore_conflicts=True,
    )
    people = {user.pk: user for user in email_recipients if user.is_active and user.email}
    subject = _one_line(f"[Governance portal] {summary}", 200)
    body = _email_body(summary=summary, url=payload.get("url", ""), email_text=email_text)
    EmailNotification.objects.bulk_create(
        [
            EmailNotification(
                recipient=user,
                event_type=event_type,
                event_id=event_id,
                subject=subject,
                body=body,
                created_at=now,
                next_attempt_at=now,
            )
            for user in people.values()
        ],
        ignore_conflicts=True,
    )
    # ignore_conflicts leaves primary keys unset: read back what is waiting to go.
    _queue_on_commit(
        delivery_ids=list(
            WebhookDelivery.objects.filter(
                event_id=event_id, endpoint__in=endpoints, state=DeliveryState.PENDING
            ).values_list("pk", flat=True)
        )
        if endpoints
        else [],
        email_ids=list(
            EmailNotification.objects.filter(
                event_id=event_id, recipient_id__in=list(people), state=DeliveryState.PENDING
            ).values_list("pk", flat=True)
        )
        if people
        else [],
    )


# --- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did: "delivered", "failed", "retry" (in `retry_in` seconds) or
    "skipped" (nothing to do: already sent, failed, not due, or gone)."""

    outcome: str
    retry_in: int | None = None


SKIPPED = AttemptResult("skipped")


def _due(row: WebhookDelivery | EmailNotification, now: Any) -> bool:
    return row.state == DeliveryState.PENDING and row.next_attempt_at <= now + CLOCK_SLACK


def _claim_delivery(delivery_id: int) -> WebhookDelivery | None:
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        now = timezone.now()
        if delivery is None or not _due(delivery, now):
            return None
        if not delivery.endpoint.active:
            delivery.state = DeliveryState.FAILED
            delivery.last_error = "The endpoint was deactivated before this was sent."
            delivery.save(update_fields=["state", "last_error"])
            return None
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + ATTEMPT_LEASE
        delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
    return delivery


def webhook_delivery_attempt(*, delivery_id: int) -> AttemptResult:
    """Make one attempt at a pending, due delivery: POST its body, signed with the
    endpoint's secret over the time of sending and the body.

    2xx: delivered. Other 4xx (but 408, 429) and 3xx: failed, no retry. 5xx, 408,
    429, timeouts and connection errors: retried after 30 s * 2^(attempts - 1), failed
    after WEBHOOK_MAX_ATTEMPTS. A delivery already delivered or failed, or not due
    (another attempt holds it), is left alone.
    Side effects: the HTTP POST; the delivery's attempts, state and last outcome.
    """
    delivery = _claim_delivery(delivery_id)
    if delivery is None:
        return SKIPPED
    attempt = delivery.attempts
    body = delivery.body_bytes
    response = webhook_post(
        url=delivery.endpoint.url,
        body=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Portal-Event": delivery.event_type,
            "X-Portal-Event-Id": delivery.event_id,
            "X-Portal-Delivery": str(delivery.pk),
            SIGNATURE_HEADER: webhook_signature_header(delivery.endpoint.secret, body),
        },
    )
    code = response.status_code
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.state != DeliveryState.PENDING or delivery.attempts != attempt:
            return SKIPPED  # our lease ran out and another attempt took over
        now = timezone.now()
        delivery.last_status_code = code
        delivery.last_error = response.error[:500]
        result: AttemptResult
        if code is not None and 200 <= code < 300:
            delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, now
            result = AttemptResult("delivered")
        elif (
            response.permanent_error
            or (code is not None and code < 500 and code not in RETRYABLE_STATUS_CODES)
            or attempt >= WEBHOOK_MAX_ATTEMPTS
        ):
            delivery.state = DeliveryState.FAILED
            result = AttemptResult("failed")
        else:
            wait = backoff_seconds(attempt)
            delivery.next_attempt_at = now + timedelta(seconds=wait)
            result = AttemptResult("retry", retry_in=wait)
        delivery.save(
            update_fields=[
                "state",
                "delivered_at",
                "last_status_code",
                "last_error",
                "next_attempt_at",
            ]
        )
    if result.outcome == "failed":
        logger.warning(
            "webhook delivery %s to endpoint %s failed after %s attempts: %s",
            delivery.pk,
            delivery.endpoint_id,
            attempt,
            delivery.last_error,
        )
    return result


def _claim_email(notification_id: int) -> EmailNotification | None:
    with transaction.atomic():
        notification = (
            EmailNotification.objects.select_for_update(of=("self",))
            .select_related("recipient")
            .filter(pk=notification_id)
            .first()
        )
        now = timezone.now()
        if notification is None or not _due(notification, now):
            return None
        if not notification.recipient.is_active:
            notification.state = DeliveryState.FAILED
            notification.last_error = "The recipient was deactivated before this was sent."
            notification.save(update_fields=["state", "last_error"])
            return None
        notification.attempts += 1
        notification.next_attempt_at = now + ATTEMPT_LEASE
        notification.save(update_fields=["attempts", "next_attempt_at"])
    return notification


def email_notification_send(*, notification_id: int) -> AttemptResult:
    """Send one pending, due e-mail through Django's mail backend (EMAIL_URL).

    A refused recipient fails it at once; other errors are retried with the webhooks'
    backoff, up to EMAIL_MAX_ATTEMPTS. One already sent or failed is left alone.
    Side effects: the e-mail; the notification's attempts, state, sent_at.
    """
    notification = _claim_email(notification_id)
    if notification is None:
        return SKIPPED
    attempt = notification.attempts
    message = EmailMessage(
        subject=notification.subject,
        body=notification.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient.email],
        headers={"X-Portal-Event": notification.event_type},
    )
    error, permanent = "", False
    try:
        message.send()
    except Exception as exc:  # any backend's failure is recorded, then retried
        error = f"{type(exc).__name__}: {exc}"[:500]
        permanent = type(exc).__name__ == "SMTPRecipientsRefused"
    with transaction.atomic():
        notification = EmailNotification.objects.select_for_update().get(pk=notification_id)
        if notification.state != DeliveryState.PENDING or notification.attempts != attempt:
            return SKIPPED
        now = timezone.now()
        notification.last_error = error
        if not error:
            notification.state, notification.sent_at = DeliveryState.DELIVERED, now
            result = AttemptResult("delivered")
        elif permanent or attempt >= EMAIL_MAX_ATTEMPTS:
            notification.state = DeliveryState.FAILED
            result = AttemptResult("failed")
        else:
            wait = backoff_seconds(attempt)
            notification.next_attempt_at = now + timedelta(seconds=wait)
            result = AttemptResult("retry", retry_in=wait)
        notification.save(update_fields=["state", "sent_at", "last_error", "next_attempt_at"])
    if result.outcome == "failed":
        logger.warning("e-mail notification %s failed: %s", notification.pk, error)
    return result


@dataclass(frozen=True)
class RequeueReport:
    deliveries: int
    emails: int


def notifications_requeue_due(*, limit: int = 500) -> RequeueReport:
    """Hand the workers every pending delivery and e-mail whose attempt is due: covers
    messages the broker lost and attempts whose worker died (their lease ran out).
    Handing over a row twice is harmless, since an attempt claims its row first."""
    from portal.notify.tasks import deliver_webhook, send_email

    now = timezone.now()
    delivery_ids = list(
        WebhookDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    email_ids = list(
        EmailNotification.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in delivery_ids:
        _queue(deliver_webhook, pk)
    for pk in email_ids:
        _queue(send_email, pk)
    return RequeueReport(deliveries=len(delivery_ids), emails=len(email_ids))


def notification_retry_later(*, task: Any, pk: int, result: AttemptResult) -> None:
    """Queue the next attempt `result` asks for (used by the tasks)."""
    if result.outcome == "retry" and result.retry_in is not None:
        _queue(task, pk, countdown=result.retry_in)


# --- endpoints (portal admins) ----------------------------------------------------------------


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once, on the page that follows creation


def _endpoint_errors(*, name: str, url: str, format: str, event_types: list[str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "An endpoint needs a name."
    if urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).netloc:
        errors["url"] = "Enter an http or https URL."
    elif refusal := webhook_url_refusal(url):
        errors["url"] = f"The portal does not post there: {refusal}."
    if format not in WebhookFormat.values:
        errors["format"] = f"No format {format!r}: json or slack."
    unknown = sorted(set(event_types) - set(EventType.values))
    if not event_types:
        errors["event_types"] = "Choose at least one event."
    elif unknown:
        errors["event_types"] = f"Unknown events: {', '.join(unknown)}."
    return errors


def _endpoint_audit(
    endpoint: WebhookEndpoint, action: str, actor: Actor, payload: dict, client_ip: str | None
) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=endpoint.pk,
        payload=payload,
        client_ip=client_ip,
    )


def webhook_endpoint_create(
    *,
    name: str,
    url: str,
    format: str,
    event_types: list[str],
    created_by: User | None,
    actor: Actor,
    secret: str = "",
    client_ip: str | None = None,
) -> CreatedEndpoint:
    """Add an endpoint, with the secret pasted in (`secret`) or a new random one.

    Refusals: ValidationError per field. Side effects: audit `webhook.created` (host
    only, never the URL's path or the secret).
    """
    errors = _endpoint_errors(name=name, url=url, format=format, event_types=event_types)
    secret = secret.strip()
    pasted = bool(secret)
    if len(url) > 500:
        errors["url"] = "A URL has at most 500 characters."
    if secret and not (SECRET_MIN_LENGTH <= len(secret) <= 200):
        errors["secret"] = f"A secret has {SECRET_MIN_LENGTH} to 200 characters."
    if errors:
        raise ValidationError(errors)
    secret = secret or f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            name=name.strip(),
            url=url,
            secret=secret,
            format=format,
            event_types=sorted(set(event_types)),
            created_by=created_by,
        )
        _endpoint_audit(
            endpoint,
            "webhook.created",
            actor,
            {
                "name": endpoint.name,
                "host": urlsplit(url).netloc,
                "format": format,
                "event_types": endpoint.event_types,
                "secret_pasted": pasted,
            },
            client_ip,
        )
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    name: str,
    url: str,
    format: str,
    event_types: list[str],
    actor: Actor,
    client_ip: str | None = None,
) -> WebhookEndpoint:
    """Change an active endpoint's name, URL, format or events (the secret stays).

    Refusals: ValidationError per field, or for a deactivated endpoint. Side effects:
    audit `webhook.updated` with the fields that changed (the URL as its host).
    """
    errors = _endpoint_errors(name=name, url=url, format=format, event_types=event_types)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.active:
            raise ValidationError("A deactivated endpoint cannot be changed.")
        wanted = {
            "name": name.strip(),
            "url": url,
            "format": format,
            "event_types": sorted(set(event_types)),
        }
        changed = [field for field, value in wanted.items() if getattr(endpoint, field) != value]
        for field in changed:
            setattr(endpoint, field, wanted[field])
        if changed:
            endpoint.save(update_fields=changed)
            _endpoint_audit(
                endpoint,
                "webhook.updated",
                actor,
                {
                    "changed": changed,
                    "name": endpoint.name,
                    "host": urlsplit(endpoint.url).netloc,
                    "format": endpoint.format,
                    "event_types": endpoint.event_types,
                },
                client_ip,
            )
    return endpoint


def webhook_endpoint_deactivate(
    *, endpoint: WebhookEndpoint, actor: Actor, client_ip: str | None = None
) -> WebhookEndpoint:
    """Stop sending to an endpoint; its pending deliveries fail when their turn comes.

    Refusals: ValidationError if already deactivated. Side effects: audit
    `webhook.deactivated`.
    """
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.active:
            raise ValidationError("This endpoint is already deactivated.")
        endpoint.active, endpoint.deactivated_at = False, timezone.now()
        endpoint.save(update_fields=["active", "deactivated_at"])
        _endpoint_audit(endpoint, "webhook.deactivated", actor, {"name": endpoint.name}, client_ip)
    return endpoint


def webhook_endpoint_test(
    *, endpoint: WebhookEndpoint, actor: Actor, client_ip: str | None = None
) -> WebhookDelivery:
    """Send a `portal.test` event to one active endpoint, whatever it subscribes to.

    Side effects: a pending delivery, audit `webhook.test_sent`; the delivery is queued
    after commit.
    """
    if not endpoint.active:
        raise ValidationError("A deactivated endpoint receives no events.")
    now = timezone.now()
    event_id = f"test-{secrets.token_hex(8)}"
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_type=TEST_EVENT_TYPE,
            event_id=event_id,
            body=webhook_body(
                format=endpoint.format,
                event_type=TEST_EVENT_TYPE,
                event_id=event_id,
                summary=f"Test event for {endpoint.name} from the governance portal",
                payload={"endpoint": endpoint.pk, "url": settings.PORTAL_BASE_URL + "/"},
                actor=actor,
                occurred_at=now,
            ),
            created_at=now,
            next_attempt_at=now,
        )
        _endpoint_audit(endpoint, "webhook.test_sent", actor, {"delivery": delivery.pk}, client_ip)
        _queue_on_commit(delivery_ids=[delivery.pk], email_ids=[])
    return delivery


def webhook_delivery_resend(
    *, delivery: WebhookDelivery, actor: Actor, client_ip: str | None = None
) -> WebhookDelivery:
    """Give a failed delivery a fresh run of attempts, with the same body and event id.

    Refusals: ValidationError unless it failed and its endpoint is active. Side
    effects: the delivery pending again, audit `webhook.delivery_resent`; queued after
    commit.
    """
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .get(pk=delivery.pk)
        )
        if delivery.state != DeliveryState.FAILED:
            raise ValidationError("Only a failed delivery can be sent again.")
        if not delivery.endpoint.active:
            raise ValidationError("This endpoint is deactivated.")
        previous_attempts = delivery.attempts
        delivery.state = DeliveryState.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["state", "attempts", "next_attempt_at"])
        _endpoint_audit(
            delivery.endpoint,
            "webhook.delivery_resent",
            actor,
            {
                "delivery": delivery.pk,
                "event_type": delivery.event_type,
                "event_id": delivery.event_id,
                "previous_attempts": previous_attempts,
                "last_status_code": delivery.last_status_code,
            },
            client_ip,
        )
        _queue_on_commit(delivery_ids=[delivery.pk], email_ids=[])
    return delivery

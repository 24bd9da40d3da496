"""Sending what is in the notification outbox: webhook deliveries and e-mails.

Sending is at least once, never twice after success is recorded. An attempt first
claims its row (locked, still pending, due) and pushes `next_attempt_at` one lease
ahead, commits, then talks to the outside server with no lock held, and records the
outcome under the lock again. Holding the row lock across a 10-second POST would have
been simpler, but on SQLite (the demo's database) a write transaction locks the whole
database. A worker that dies between the POST and the record leaves the lease to run
out; the sweep then tries again, so receivers deduplicate on the event id.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from portal.notify.choices import DeliveryState
from portal.notify.clients import webhook_post
from portal.notify.models import EmailNotification, WebhookDelivery
from portal.webhooks import SIGNATURE_HEADER, webhook_signature_header

logger = logging.getLogger(__name__)

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


def notification_queue(task: Any, pk: int, countdown: int | None = None) -> None:
    """Hand a row to the workers. A broker that is away loses nothing: the row stays
    pending and the sweep (`notify.requeue_due`) hands it over again."""
    try:
        task.apply_async(args=[pk], countdown=countdown)
    except OperationalError:
        logger.warning("broker unavailable; %s(%s) waits for the sweep", task.name, pk)


def notifications_queue_on_commit(*, delivery_ids: list[int], email_ids: list[int]) -> None:
    def queue() -> None:
        from portal.notify.tasks import deliver_webhook, send_email  # noqa: PLC0415 -- task

        for pk in delivery_ids:
            notification_queue(deliver_webhook, pk)
        for pk in email_ids:
            notification_queue(send_email, pk)

    if delivery_ids or email_ids:
        transaction.on_commit(queue, robust=True)


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did: "delivered", "failed", "retry" (in `retry_in` seconds) or
    "skipped" (nothing to do: already sent, failed, not due, or gone)."""

    outcome: str
    retry_in: int | None = None


SKIPPED = AttemptResult("skipped")


def _due(row: WebhookDelivery | EmailNotification, now: Any) -> bool:
    return row.state == DeliveryState.PENDING and row.next_attempt_at <= now + CLOCK_SLACK


def _attempt_claim(
    rows: QuerySet, pk: int, *, gone: Callable[[Any], str], stamp_attempt: bool = False
) -> Any | None:
    """Claim a pending, due row (a webhook delivery or an e-mail) for one attempt:
    under its lock, count the attempt and push `next_attempt_at` one lease ahead, then
    commit. None when it is missing, no longer pending or not due (another attempt
    holds it), or when `gone(row)` says why it can no longer be sent (then it is failed
    with that reason). `stamp_attempt` also records `last_attempt_at`."""
    with transaction.atomic():
        row = rows.select_for_update(of=("self",)).filter(pk=pk).first()
        now = timezone.now()
        if row is None or not _due(row, now):
            return None
        reason = gone(row)
        if reason:
            row.state, row.last_error = DeliveryState.FAILED, reason
            row.save(update_fields=["state", "last_error"])
            return None
        row.attempts += 1
        row.next_attempt_at = now + ATTEMPT_LEASE
        fields = ["attempts", "next_attempt_at"]
        if stamp_attempt:
            row.last_attempt_at = now
            fields.append("last_attempt_at")
        row.save(update_fields=fields)
    return row


def _attempt_record(
    model: type[WebhookDelivery] | type[EmailNotification],
    pk: int,
    *,
    attempt: int,
    delivered: bool,
    give_up: bool,
    error: str,
    max_attempts: int,
    delivered_at_field: str,
    extra: dict[str, Any] | None = None,
) -> tuple[AttemptResult, Any]:
    """Record one attempt's outcome under the row's lock again: delivered; failed when
    `give_up` or after `max_attempts`; else due again after the backoff. SKIPPED when
    the row moved on meanwhile (our lease ran out and another attempt took over)."""
    with transaction.atomic():
        row = model.objects.select_for_update().get(pk=pk)
        if row.state != DeliveryState.PENDING or row.attempts != attempt:
            return SKIPPED, row
        now = timezone.now()
        for name, value in (extra or {}).items():
            setattr(row, name, value)
        row.last_error = error
        if delivered:
            row.state = DeliveryState.DELIVERED
            setattr(row, delivered_at_field, now)
            result = AttemptResult("delivered")
        elif give_up or attempt >= max_attempts:
            row.state = DeliveryState.FAILED
            result = AttemptResult("failed")
        else:
            wait = backoff_seconds(attempt)
            row.next_attempt_at = now + timedelta(seconds=wait)
            result = AttemptResult("retry", retry_in=wait)
        row.save(
            update_fields=[
                "state",
                delivered_at_field,
                *(extra or {}),
                "last_error",
                "next_attempt_at",
            ]
        )
    return result, row


def _endpoint_gone(delivery: WebhookDelivery) -> str:
    if not delivery.endpoint.active:
        return "The endpoint was deactivated before this was sent."
    return ""


def _recipient_gone(notification: EmailNotification) -> str:
    if not notification.recipient.is_active:
        return "The recipient was deactivated before this was sent."
    return ""


def webhook_delivery_attempt(*, delivery_id: int) -> AttemptResult:
    """Make one attempt at a pending, due delivery: POST its body, signed with the
    endpoint's secret over the time of sending and the body.

    2xx: delivered. Other 4xx (but 408, 429) and 3xx: failed, no retry. 5xx, 408,
    429, timeouts and connection errors: retried after 30 s * 2^(attempts - 1), failed
    after WEBHOOK_MAX_ATTEMPTS. A delivery already delivered or failed, or not due
    (another attempt holds it), is left alone.
    Side effects: the HTTP POST; the delivery's attempts, state and last outcome.
    """
    delivery = _attempt_claim(
        WebhookDelivery.objects.select_related("endpoint"),
        delivery_id,
        gone=_endpoint_gone,
        stamp_attempt=True,
    )
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
    result, delivery = _attempt_record(
        WebhookDelivery,
        delivery_id,
        attempt=attempt,
        delivered=code is not None and 200 <= code < 300,
        give_up=response.permanent_error
        or (code is not None and code < 500 and code not in RETRYABLE_STATUS_CODES),
        error=response.error[:500],
        max_attempts=WEBHOOK_MAX_ATTEMPTS,
        delivered_at_field="delivered_at",
        extra={"last_status_code": code},
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


def email_notification_send(*, notification_id: int) -> AttemptResult:
    """Send one pending, due e-mail through Django's mail backend (EMAIL_URL).

    A refused recipient fails it at once; other errors are retried with the webhooks'
    backoff, up to EMAIL_MAX_ATTEMPTS. One already sent or failed is left alone.
    Side effects: the e-mail; the notification's attempts, state, sent_at.
    """
    notification = _attempt_claim(
        EmailNotification.objects.select_related("recipient"),
        notification_id,
        gone=_recipient_gone,
    )
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
    result, notification = _attempt_record(
        EmailNotification,
        notification_id,
        attempt=attempt,
        delivered=not error,
        give_up=permanent,
        error=error,
        max_attempts=EMAIL_MAX_ATTEMPTS,
        delivered_at_field="sent_at",
    )
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
    from portal.notify.tasks import deliver_webhook, send_email  # noqa: PLC0415 -- task

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
        notification_queue(deliver_webhook, pk)
    for pk in email_ids:
        notification_queue(send_email, pk)
    return RequeueReport(deliveries=len(delivery_ids), emails=len(email_ids))


def notification_retry_later(*, task: Any, pk: int, result: AttemptResult) -> None:
    """Queue the next attempt `result` asks for (used by the tasks)."""
    if result.outcome == "retry" and result.retry_in is not None:
        notification_queue(task, pk, countdown=result.retry_in)

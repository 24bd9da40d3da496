"""Sending what is in the notification outbox: webhook deliveries and e-mails.

Sending is at least once, never twice after success is recorded. Each attempt runs the
portal's shared outbox steps (`portal.outbox`): it first claims its row (locked, still
pending, due) and pushes `next_attempt_at` one lease ahead, commits, then talks to the
outside server with no lock held, and records the outcome under the lock again. Holding
the row lock across a 10-second POST would have been simpler, but on SQLite (the demo's
database) a write transaction locks the whole database. A worker that dies between the
POST and the record leaves the lease to run out; the sweep then tries again, so
receivers deduplicate on the event id.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from portal.notify.choices import DeliveryState
from portal.notify.clients import webhook_post
from portal.notify.models import EmailNotification, WebhookDelivery
from portal.outbox import Backoff, Outbox, outbox_send
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


NOTIFY_BACKOFF = Backoff(base_seconds=BACKOFF_BASE_SECONDS)


def backoff_seconds(attempts: int) -> int:
    """How long to wait after the `attempts`-th failed attempt: 30 s, 60 s, 120 s..."""
    return NOTIFY_BACKOFF.seconds(attempts)


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


@dataclass(frozen=True)
class SendOutcome:
    """What one call to the outside server did: `delivered`, or the error and whether
    it is worth no retry (`give_up`); `extra` fields to store on the row."""

    delivered: bool
    give_up: bool = False
    error: str = ""
    extra: dict[str, Any] | None = None


class _NotificationOutbox(Outbox[Any, SendOutcome, AttemptResult]):
    """Webhook deliveries and e-mails on the shared claim -> lease -> send -> record
    steps. A pending row stays `pending` while in flight: the claim pushes
    `next_attempt_at` one lease ahead, so the row is not due until the lease has run
    out."""

    max_attempts: ClassVar[int]
    delivered_at_field: ClassVar[str]
    # Also record `last_attempt_at` on the claim.
    stamp_attempt: ClassVar[bool] = False

    def missing(self, pk: int) -> AttemptResult:
        return SKIPPED

    def gone(self, row: Any) -> str:
        """Why the row can no longer be sent ("" when it can)."""
        return ""

    def claim(self, row: Any, now: datetime) -> AttemptResult | None:
        """Claim a pending, due row for one attempt: count the attempt and push
        `next_attempt_at` one lease ahead. SKIPPED when it is no longer pending or not
        due (another attempt holds it), or when `gone(row)` says why it can no longer
        be sent (then it is failed with that reason)."""
        if not _due(row, now):
            return SKIPPED
        reason = self.gone(row)
        if reason:
            row.state, row.last_error = DeliveryState.FAILED, reason
            row.save(update_fields=["state", "last_error"])
            return SKIPPED
        row.attempts += 1
        row.next_attempt_at = now + ATTEMPT_LEASE
        fields = ["attempts", "next_attempt_at"]
        if self.stamp_attempt:
            row.last_attempt_at = now
            fields.append("last_attempt_at")
        row.save(update_fields=fields)
        return None

    def in_flight(self, row: Any) -> bool:
        return row.state == DeliveryState.PENDING

    def log_failed(self, row: Any) -> None:
        """Say in the log that the row failed for good."""

    def taken_over(self, row: Any) -> AttemptResult:
        return SKIPPED

    def record(
        self, row: Any, *, outcome: SendOutcome | None, error: Exception | None, now: datetime
    ) -> AttemptResult:
        """Delivered; failed when the outcome gives up or after `max_attempts`; else
        due again after the backoff."""
        # Narrows the type for the checker: the senders catch their own errors.
        assert outcome is not None  # nosec B101
        extra = outcome.extra or {}
        for name, value in extra.items():
            setattr(row, name, value)
        row.last_error = outcome.error
        if outcome.delivered:
            row.state = DeliveryState.DELIVERED
            setattr(row, self.delivered_at_field, now)
            result = AttemptResult("delivered")
        elif outcome.give_up or row.attempts >= self.max_attempts:
            row.state = DeliveryState.FAILED
            result = AttemptResult("failed")
            self.log_failed(row)
        else:
            wait = backoff_seconds(row.attempts)
            row.next_attempt_at = now + timedelta(seconds=wait)
            result = AttemptResult("retry", retry_in=wait)
        row.save(
            update_fields=[
                "state",
                self.delivered_at_field,
                *extra,
                "last_error",
                "next_attempt_at",
            ]
        )
        return result


class _WebhookOutbox(_NotificationOutbox):
    model = WebhookDelivery
    max_attempts = WEBHOOK_MAX_ATTEMPTS
    delivered_at_field = "delivered_at"
    stamp_attempt = True

    def rows(self) -> QuerySet[WebhookDelivery]:
        return WebhookDelivery.objects.select_related("endpoint")

    def gone(self, row: WebhookDelivery) -> str:
        if not row.endpoint.active:
            return "The endpoint was deactivated before this was sent."
        return ""

    def log_failed(self, row: WebhookDelivery) -> None:
        logger.warning(
            "webhook delivery %s to endpoint %s failed after %s attempts: %s",
            row.pk,
            row.endpoint_id,
            row.attempts,
            row.last_error,
        )

    def send(self, row: WebhookDelivery) -> SendOutcome:
        body = row.body_bytes
        response = webhook_post(
            url=row.endpoint.url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Portal-Event": row.event_type,
                "X-Portal-Event-Id": row.event_id,
                "X-Portal-Delivery": str(row.pk),
                SIGNATURE_HEADER: webhook_signature_header(row.endpoint.secret, body),
            },
        )
        code = response.status_code
        return SendOutcome(
            delivered=code is not None and 200 <= code < 300,
            give_up=response.permanent_error
            or (code is not None and code < 500 and code not in RETRYABLE_STATUS_CODES),
            error=response.error[:500],
            extra={"last_status_code": code},
        )


class _EmailOutbox(_NotificationOutbox):
    model = EmailNotification
    max_attempts = EMAIL_MAX_ATTEMPTS
    delivered_at_field = "sent_at"

    def rows(self) -> QuerySet[EmailNotification]:
        return EmailNotification.objects.select_related("recipient")

    def gone(self, row: EmailNotification) -> str:
        if not row.recipient.is_active:
            return "The recipient was deactivated before this was sent."
        return ""

    def log_failed(self, row: EmailNotification) -> None:
        logger.warning("e-mail notification %s failed: %s", row.pk, row.last_error)

    def send(self, row: EmailNotification) -> SendOutcome:
        message = EmailMessage(
            subject=row.subject,
            body=row.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[row.recipient.email],
            headers={"X-Portal-Event": row.event_type},
        )
        try:
            message.send()
        except Exception as exc:  # any backend's failure is recorded, then retried
            return SendOutcome(
                delivered=False,
                give_up=type(exc).__name__ == "SMTPRecipientsRefused",
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
        return SendOutcome(delivered=True)


def webhook_delivery_attempt(*, delivery_id: int) -> AttemptResult:
    """Make one attempt at a pending, due delivery: POST its body, signed with the
    endpoint's secret over the time of sending and the body.

    2xx: delivered. Other 4xx (but 408, 429) and 3xx: failed, no retry. 5xx, 408,
    429, timeouts and connection errors: retried after 30 s * 2^(attempts - 1), failed
    after WEBHOOK_MAX_ATTEMPTS. A delivery already delivered or failed, or not due
    (another attempt holds it), is left alone.
    Side effects: the HTTP POST; the delivery's attempts, state and last outcome.
    """
    return outbox_send(_WebhookOutbox(), delivery_id)


def email_notification_send(*, notification_id: int) -> AttemptResult:
    """Send one pending, due e-mail through Django's mail backend (EMAIL_URL).

    A refused recipient fails it at once; other errors are retried with the webhooks'
    backoff, up to EMAIL_MAX_ATTEMPTS. One already sent or failed is left alone.
    Side effects: the e-mail; the notification's attempts, state, sent_at.
    """
    return outbox_send(_EmailOutbox(), notification_id)


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

"""Celery tasks of notifications: thin calls onto its services.

Each attempt is recorded on its row before the next is queued, so the row (not the
message) is the truth: a lost or duplicated message costs nothing.
"""

from celery import shared_task

from portal.notify.services import (
    email_notification_send,
    notification_retry_later,
    notifications_requeue_due,
    webhook_delivery_attempt,
)


@shared_task(name="notify.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """One attempt at a webhook delivery; queues the next one when it must retry."""
    result = webhook_delivery_attempt(delivery_id=delivery_id)
    notification_retry_later(task=deliver_webhook, pk=delivery_id, result=result)
    return result.outcome


@shared_task(name="notify.send_email", acks_late=True)
def send_email(notification_id: int) -> str:
    """One attempt at an e-mail notification; queues the next one when it must retry."""
    result = email_notification_send(notification_id=notification_id)
    notification_retry_later(task=send_email, pk=notification_id, result=result)
    return result.outcome


@shared_task(name="notify.requeue_due")
def requeue_due() -> dict[str, int]:
    """Beat: hand the workers every pending delivery and e-mail whose attempt is due."""
    report = notifications_requeue_due()
    return {"deliveries": report.deliveries, "emails": report.emails}

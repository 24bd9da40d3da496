"""Writes for notifications, one module per job: publishing an event to the outbox
(`publish`), sending what is in it (`delivery`), and the admins' webhook endpoints
(`endpoints`). Imports point down: endpoints -> publish -> delivery. The public names
are re-exported here."""

from portal.notify.services.delivery import (
    ATTEMPT_LEASE,
    EMAIL_MAX_ATTEMPTS,
    WEBHOOK_MAX_ATTEMPTS,
    AttemptResult,
    RequeueReport,
    backoff_seconds,
    email_notification_send,
    notification_retry_later,
    notifications_requeue_due,
    webhook_delivery_attempt,
)
from portal.notify.services.endpoints import (
    AUDIT_OBJECT_TYPE,
    SECRET_MIN_LENGTH,
    SECRET_PREFIX,
    CreatedEndpoint,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_deactivate,
    webhook_endpoint_test,
    webhook_endpoint_update,
)
from portal.notify.services.publish import notification_publish, webhook_body

__all__ = [
    "ATTEMPT_LEASE",
    "AUDIT_OBJECT_TYPE",
    "EMAIL_MAX_ATTEMPTS",
    "SECRET_MIN_LENGTH",
    "SECRET_PREFIX",
    "WEBHOOK_MAX_ATTEMPTS",
    "AttemptResult",
    "CreatedEndpoint",
    "RequeueReport",
    "backoff_seconds",
    "email_notification_send",
    "notification_publish",
    "notification_retry_later",
    "notifications_requeue_due",
    "webhook_body",
    "webhook_delivery_attempt",
    "webhook_delivery_resend",
    "webhook_endpoint_create",
    "webhook_endpoint_deactivate",
    "webhook_endpoint_test",
    "webhook_endpoint_update",
]

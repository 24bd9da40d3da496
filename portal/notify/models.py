"""Outbound notifications: webhook endpoints, their deliveries, e-mails to people.

Deliveries and e-mails are an outbox: written in the transaction of the event they
announce, sent afterwards by a worker, retried, and kept as the record of what went
out where.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.notify.choices import DeliveryState, WebhookFormat


class WebhookEndpoint(models.Model):
    """A URL the portal POSTs signed events to (a Slack incoming webhook, a chat
    bridge, a ticketing system...), and the events it subscribes to."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    # Kept in clear because signing needs it (an HMAC key cannot be hashed like a
    # password). In production it should come from Secret Manager rather than live in
    # this table; the portal shows it once, at creation, and masked afterwards.
    secret = models.CharField(max_length=200)
    format = models.CharField(max_length=8, choices=WebhookFormat.choices)
    event_types = models.JSONField(default=list)  # ["review.opened", ...]
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-active", "name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def secret_masked(self) -> str:
        return f"••••••••{self.secret[-4:]}" if len(self.secret) >= 16 else "••••••••"

    @property
    def url_shown(self) -> str:
        """Scheme and host only: the path of a Slack-style webhook URL is a secret too."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") else self.url

    def subscribes_to(self, event_type: str) -> bool:
        return event_type in self.event_types


class WebhookDelivery(models.Model):
    """One event for one endpoint: the exact body sent, and how sending it went.

    `event_id` is the event's idempotency key: an event reaches an endpoint at most
    once, however often it is published.
    """

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(max_length=64)
    event_id = models.CharField(max_length=200)
    body = models.TextField()  # UTF-8 JSON, signed and sent byte for byte
    state = models.CharField(
        max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # While pending: when the next attempt is due (a worker holding an attempt pushes
    # it ahead, so nobody else posts meanwhile).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"],
                name="one_delivery_per_endpoint_event",
                violation_error_message="This event was already sent to this endpoint.",
            )
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to endpoint {self.endpoint_id}"

    @property
    def body_bytes(self) -> bytes:
        return self.body.encode()


class EmailNotification(models.Model):
    """One e-mail to one person about one event. The body links to the portal rather
    than carrying the decision's details; unique per (recipient, event)."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_notifications"
    )
    event_type = models.CharField(max_length=64)
    event_id = models.CharField(max_length=200)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    state = models.CharField(
        max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["recipient", "event_id"],
                name="one_email_per_recipient_event",
                violation_error_message="This person was already e-mailed about this event.",
            )
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="email_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to user {self.recipient_id}"

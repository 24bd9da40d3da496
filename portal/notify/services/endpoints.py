"""Webhook endpoints, managed by portal admins: create, change, deactivate, send a test
event, resend a delivery. Every change is audited."""

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.notify.choices import TEST_EVENT_TYPE, DeliveryState, EventType, WebhookFormat
from portal.notify.clients import webhook_url_refusal
from portal.notify.models import WebhookDelivery, WebhookEndpoint
from portal.notify.services.delivery import notifications_queue_on_commit
from portal.notify.services.publish import webhook_body

AUDIT_OBJECT_TYPE = "webhook_endpoint"
SECRET_PREFIX = "whsec_"  # noqa: S105  # nosec B105  # a public marker, not a secret
SECRET_MIN_LENGTH = 16


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
        notifications_queue_on_commit(delivery_ids=[delivery.pk], email_ids=[])
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
        notifications_queue_on_commit(delivery_ids=[delivery.pk], email_ids=[])
    return delivery

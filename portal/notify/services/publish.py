"""Publishing an event to the notification outbox: one webhook delivery per subscribed
endpoint and one e-mail per person, sent after commit (portal.notify.services.delivery)."""

import json
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.template.loader import render_to_string
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.notify.choices import DeliveryState, WebhookFormat
from portal.notify.models import EmailNotification, WebhookDelivery, WebhookEndpoint
from portal.notify.services.delivery import notifications_queue_on_commit


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
            "actor": actor.ref,
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
    notifications_queue_on_commit(
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

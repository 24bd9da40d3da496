"""Reads of the audit ledger."""

from datetime import date

from django.db.models import QuerySet

from portal.audit.models import AuditEvent


def audit_events_recent(*, limit: int = 10) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("-sequence")[:limit])


def audit_events_list(
    *,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    object_id: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("payload_record").order_by("-sequence")
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        kind, _, ident = actor.partition(":")
        events = events.filter(actor_type=kind, **({"actor_id": ident} if ident else {}))
    if object_type:
        events = events.filter(object_type=object_type)
    if object_id:
        events = events.filter(object_id=object_id)
    if since:
        events = events.filter(occurred_at__date__gte=since)
    if until:
        events = events.filter(occurred_at__date__lte=until)
    return events


def audit_events_for_object(*, object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    return audit_events_list(object_type=object_type, object_id=str(object_id))

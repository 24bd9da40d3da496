"""An object's whole life on one timeline: its own events and those of related objects.

The ledger knows no app, so apps say what belongs to an object's life: an app
registers, in its AppConfig.ready(), a function from an object id to the (object_type,
object_id) pairs whose events join the timeline (governance's reviews add a model
version's reviews, its training adds the run that produced it).
"""

from collections.abc import Callable

from django.db.models import Q, QuerySet

from portal.audit.models import AuditEvent

RelatedObjects = Callable[[str], list[tuple[str, str]]]
_related: dict[str, list[RelatedObjects]] = {}


def timeline_related_register(object_type: str, related: RelatedObjects) -> None:
    """Add `related` to what `object_type`'s timeline gathers (idempotent per function)."""
    found = _related.setdefault(object_type, [])
    if related not in found:
        found.append(related)


def audit_timeline(*, object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    """The object's events and its related objects' events, oldest first."""
    pairs = {(object_type, object_id)}
    for related in _related.get(object_type, []):
        pairs.update((str(kind), str(ident)) for kind, ident in related(object_id))
    condition = Q()
    for kind, ident in sorted(pairs):
        condition |= Q(object_type=kind, object_id=ident)
    return (
        AuditEvent.objects.select_related("payload_record").filter(condition).order_by("sequence")
    )

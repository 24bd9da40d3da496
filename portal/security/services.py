"""Writes for security events: refused requests, counted per (kind, source, window).

Lock order (the portal's one order, DESIGN.md): the window row first, the audit chain
head last. The first refusal of a window inserts the row and appends its one audit
event in the same transaction; every later refusal is one UPDATE ... count + 1 and
never touches the chain head, so a flood of refusals costs no ledger rows and does
not queue behind the portal's real appenders.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.security.models import RefusalWindow


@dataclass(frozen=True)
class RefusalCounted:
    """Where a refusal was counted; `first` when it opened the window (and was audited)."""

    window_id: int
    first: bool


def refusal_window_start(now: datetime) -> datetime:
    """The start of the window `now` falls in (windows are aligned to the epoch)."""
    seconds = settings.SECURITY_REFUSAL_WINDOW_SECONDS
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def refusal_source(actor: Actor, client_ip: str | None) -> str:
    """Who a refusal is counted against: the person or token, else the client address."""
    if actor.id and actor.type in ("user", "token"):
        return f"{actor.type}:{actor.id}"[:80]
    return f"ip:{client_ip or 'unknown'}"[:80]


def security_refusal_record(
    *,
    kind: str,
    source: str,
    action: str,
    actor: Actor,
    details: dict[str, Any],
    object_type: str = "",
    object_id: str | int = "",
    client_ip: str | None = None,
) -> RefusalCounted:
    """Count one refused request against (kind, source, the current window).

    The window's first refusal writes one audit event `action` with `details` (the
    first occurrence's, kept); later ones only increment the window's count. Call it
    outside the refused action's own transaction (that one rolls back).

    Side effects: a RefusalWindow row created or its count incremented; for the first
    refusal of a window, the audit event.
    """
    now = timezone.now()
    start = refusal_window_start(now)
    window = RefusalWindow.objects.filter(kind=kind[:80], source=source[:80], window_start=start)
    if window.update(count=F("count") + 1, last_seen_at=now):
        return RefusalCounted(window_id=window.values_list("pk", flat=True).get(), first=False)
    try:
        with transaction.atomic():
            opened = RefusalWindow.objects.create(
                kind=kind[:80],
                source=source[:80],
                window_start=start,
                count=1,
                first_seen_at=now,
                last_seen_at=now,
            )
            opened.event = audit_record(
                action=action,
                actor=actor,
                object_type=object_type,
                object_id=object_id,
                payload=details,
                client_ip=client_ip,
            )
            opened.save(update_fields=["event"])
    except IntegrityError:
        # A concurrent refusal opened this window first (on PostgreSQL our INSERT waited
        # for its transaction): count ours there.
        window.update(count=F("count") + 1, last_seen_at=now)
        return RefusalCounted(window_id=window.values_list("pk", flat=True).get(), first=False)
    return RefusalCounted(window_id=opened.pk, first=True)

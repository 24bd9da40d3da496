"""Writes for security events: refused requests, counted per (kind, source, window).

Lock order (the portal's one order, DESIGN.md): the window row first, the audit chain
head last. The first refusal of a window inserts the row and appends its one audit
event in the same transaction; every later refusal is one UPDATE ... count + 1 and
never touches the chain head, so a flood of refusals costs no ledger rows and does
not queue behind the portal's real appenders.

Unauthenticated storms: a caller with no account is counted against its address, so a
botnet rotating addresses (or an IPv6 client walking its /64) would open one window,
and so write one ledger row, per address. The number of windows anonymous sources may
open is therefore capped per kind and window (SECURITY_ANONYMOUS_WINDOWS_PER_KIND,
counted in the shared cache): past the cap, their refusals are counted in one overflow
window per kind whose source is `ip:*` (one more ledger row, then only counts). Every
refusal is still counted; the ledger grows by at most cap + 1 rows per kind per window.
People and tokens are never folded: they are few, and each is worth its own row.

Domain refusals (a self-approval, a four-eyes violation, a rollout the gate does not
allow) are recorded by the service that refuses, through `domain_refusal_record`; the
request's middleware then knows (`refusals_recorded_in_context`) and does not count the
same refusal a second time as an access refusal.
"""

from contextvars import ContextVar
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
from portal.security.ratelimit import rate_limit_hit

ANONYMOUS_OVERFLOW_SOURCE = "ip:*"
DOMAIN_ACTION = "security.domain_refused"

# How many refusals were recorded in this context (one request, one task): the
# refusal middleware reads it to count each refused request once.
_recorded_in_context: ContextVar[int] = ContextVar("refusals_recorded", default=0)


def refusals_recorded_in_context() -> int:
    """How many refusals this context (request) has recorded so far."""
    return _recorded_in_context.get()


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
    """Who a refusal is counted against: the person, token or operator (`system:...`),
    else the client address."""
    if actor.id and actor.type in ("user", "token", "system"):
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
    refusal of a window, the audit event. An anonymous source (`ip:...`) past the cap
    of windows per kind is counted in the kind's overflow window (`ip:*`) instead.
    """
    _recorded_in_context.set(_recorded_in_context.get() + 1)
    now = timezone.now()
    start = refusal_window_start(now)
    if source.startswith("ip:") and source != ANONYMOUS_OVERFLOW_SOURCE:
        source = _anonymous_source_or_overflow(kind=kind, source=source, start=start)
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


def _anonymous_source_or_overflow(*, kind: str, source: str, start: datetime) -> str:
    """`source`, or the overflow source once anonymous sources have opened the cap of
    windows of `kind` in this window. A source that already has a window keeps it."""
    opened_already = RefusalWindow.objects.filter(
        kind=kind[:80], source=source[:80], window_start=start
    )
    if opened_already.exists():
        return source
    opened = rate_limit_hit(
        scope=f"refusal-windows:{kind[:80]}:{int(start.timestamp())}",
        client="anonymous",
        window_seconds=settings.SECURITY_REFUSAL_WINDOW_SECONDS,
    )
    if opened > settings.SECURITY_ANONYMOUS_WINDOWS_PER_KIND:
        return ANONYMOUS_OVERFLOW_SOURCE
    return source


def domain_refusal_record(
    *,
    code: str,
    reason: str,
    actor: Actor,
    object_type: str = "",
    object_id: str | int = "",
    client_ip: str | None = None,
    action: str = DOMAIN_ACTION,
    details: dict[str, Any] | None = None,
) -> RefusalCounted:
    """Count a refusal a service decided on (kind `domain.<code>`: self_approval,
    four_eyes, rollout_no_gate, ...) against the actor, like an access refusal.

    Call it outside the refused action's transaction (that one rolls back) and raise
    the refusal afterwards. Side effects as `security_refusal_record`; the window's
    first refusal is audited as `action` with `details` plus the code and reason.
    """
    return security_refusal_record(
        kind=f"domain.{code}",
        source=refusal_source(actor, client_ip),
        action=action,
        actor=actor,
        details={**(details or {}), "code": str(code)[:40], "reason": str(reason)[:300]},
        object_type=object_type,
        object_id=object_id,
        client_ip=client_ip,
    )

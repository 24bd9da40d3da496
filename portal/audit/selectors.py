"""Reads of the audit ledger."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant, User
from portal.apitokens.models import ApiToken
from portal.audit.checkpoints import event_leaf
from portal.audit.choices import ActorType
from portal.audit.merkle import consistency_proof, inclusion_proof, inclusion_proofs, tree_root
from portal.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditExport


def audit_events_recent(*, limit: int = 10) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("-sequence")[:limit])


def audit_events_all() -> QuerySet[AuditEvent]:
    """Every event with its payload, newest first: the base the filter set narrows."""
    return AuditEvent.objects.select_related("payload_record").order_by("-sequence")


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


def audit_checkpoint_latest() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-tree_size").first()


def _event_leaves(*, tree_size: int) -> list[bytes]:
    hashes = list(
        AuditEvent.objects.filter(sequence__lte=tree_size)
        .order_by("sequence")
        .values_list("hash", flat=True)
    )
    if len(hashes) != tree_size:
        raise ValueError(f"the ledger has {len(hashes)} of the first {tree_size} events")
    return [event_leaf(digest) for digest in hashes]


def audit_inclusion_proof(*, sequence: int, tree_size: int) -> dict[str, Any]:
    """The RFC 9162 inclusion proof of event `sequence` in the tree of `tree_size` events.

    Hashes the first `tree_size` chain hashes (32 bytes each in memory); ValueError
    when the event is not in that tree or the ledger has fewer events.
    """
    if not 1 <= sequence <= tree_size:
        raise ValueError(f"event #{sequence} is not in a tree of {tree_size} events")
    leaves = _event_leaves(tree_size=tree_size)
    return {
        "sequence": sequence,
        "leaf_index": sequence - 1,
        "tree_size": tree_size,
        "leaf_hash": leaves[sequence - 1].hex(),
        "root_hash": tree_root(leaves).hex(),
        "proof": [digest.hex() for digest in inclusion_proof(sequence - 1, leaves)],
    }


def audit_inclusion_proofs(*, sequences: Iterable[int], tree_size: int) -> dict[int, list[str]]:
    """RFC 9162 inclusion proofs (hex, leaf level first) of many events in the tree of
    `tree_size` events, keyed by sequence. Reads the first `tree_size` chain hashes
    once and builds the tree once (about 64 bytes per event); ValueError when an event
    is not in that tree or the ledger has fewer events."""
    leaves = _event_leaves(tree_size=tree_size)
    proofs = inclusion_proofs([sequence - 1 for sequence in sequences], leaves)
    return {index + 1: [node.hex() for node in proof] for index, proof in proofs.items()}


def audit_consistency_proof(*, first_size: int, second_size: int) -> dict[str, Any]:
    """The RFC 9162 consistency proof that the tree of `first_size` events is a prefix of
    the tree of `second_size`; ValueError when the sizes are out of order or too big."""
    if not 1 <= first_size <= second_size:
        raise ValueError("first_size must be at least 1 and at most second_size")
    leaves = _event_leaves(tree_size=second_size)
    return {
        "first_size": first_size,
        "second_size": second_size,
        "first_root": tree_root(leaves[:first_size]).hex(),
        "second_root": tree_root(leaves).hex(),
        "proof": [digest.hex() for digest in consistency_proof(first_size, leaves)],
    }


def audit_actor_names(events: Iterable[AuditEvent]) -> dict[tuple[str, str], str]:
    """Name and current roles of each person or token behind `events`, by (type, id).

    The ledger keeps pseudonymous ids; this is for those allowed to read the trail
    (auditors, portal admins). Always three queries (tokens, people, their active
    roles), even with nobody to name, so a page's query count depends neither on its
    rows nor on who acted in them.
    """
    return audit_actor_names_for(pairs={(event.actor_type, event.actor_id) for event in events})


def audit_events_named(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """`events` as a list, each with `actor_name` set to the name `audit_actor_names`
    gives ("" for the system and the anonymous); the same three queries."""
    events = list(events)
    names = audit_actor_names(events)
    for event in events:
        event.actor_name = names.get((event.actor_type, event.actor_id), "")  # type: ignore[attr-defined]
    return events


def audit_actor_ref_name(ref: str) -> str:
    """The name behind one pseudonymous ref ("user:6", "token:ab12…"); the ref itself
    when nobody is behind it (a system component, a deleted person)."""
    kind, _, ident = ref.partition(":")
    return audit_actor_names_for(pairs={(kind, ident)}).get((kind, ident)) or ref


def audit_actor_names_for(*, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """`audit_actor_names` for (actor type, actor id) pairs rather than events."""
    wanted = pairs
    user_ids = {int(ident) for kind, ident in wanted if kind == ActorType.USER and ident.isdigit()}
    prefixes = [ident for kind, ident in wanted if kind == ActorType.TOKEN]
    # An impossible key keeps each query from being skipped as empty by the ORM.
    tokens = list(ApiToken.objects.filter(prefix__in=prefixes or [""]))
    user_ids |= {token.owner_id for token in tokens}
    users = {user.pk: user for user in User.objects.filter(pk__in=user_ids or [0])}
    roles: dict[int, list[str]] = {}
    active = RoleGrant.objects.filter(user_id__in=user_ids or [0], revoked_at__isnull=True)
    for user_id, role in active.order_by("role").values_list("user_id", "role"):
        roles.setdefault(user_id, []).append(Role(role).label)

    def described(user_id: int) -> str:
        user = users.get(user_id)
        if user is None:
            return ""
        return (
            f"{user.full_name or user.email} ({', '.join(roles.get(user_id, [])) or 'no role now'})"
        )

    names = {(ActorType.USER, str(pk)): described(pk) for pk in users}
    for token in tokens:
        names[(ActorType.TOKEN, token.prefix)] = (
            f"token {token.name!r} of {described(token.owner_id)}"
        )
    return names


@dataclass(frozen=True)
class AuditExportStatus:
    """How far behind the ledger's outside copy is. `lag_events` events after
    `exported_sequence` are not yet exported; the oldest happened at `oldest_pending_at`
    (None when none is pending), `lag_seconds` ago."""

    destination: str
    head_sequence: int
    exported_sequence: int
    lag_events: int
    oldest_pending_at: datetime | None
    lag_seconds: float
    state: str
    failures: int
    next_attempt_at: datetime | None
    last_exported_at: datetime | None
    last_error: str


def audit_checkpoint_export_status(*, destination: str) -> AuditExportStatus:
    """The checkpoints' export against the latest signed checkpoint (three or four
    queries): here `head_sequence` and `exported_sequence` are tree sizes (of the
    latest checkpoint and of the last one exported), `lag_events` counts checkpoints."""
    latest = AuditCheckpoint.objects.order_by("-tree_size").values_list("tree_size", flat=True)
    head = latest.first() or 0
    cursor = AuditExport.objects.filter(destination=destination).first()
    exported = cursor.exported_sequence if cursor else 0
    pending = AuditCheckpoint.objects.filter(tree_size__gt=exported)
    oldest = None
    if head > exported:
        oldest = pending.order_by("tree_size").values_list("issued_at", flat=True).first()
    return AuditExportStatus(
        destination=destination,
        head_sequence=head,
        exported_sequence=exported,
        lag_events=pending.count() if oldest else 0,
        oldest_pending_at=oldest,
        lag_seconds=max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0,
        state=cursor.state if cursor else "never run",
        failures=cursor.failures if cursor else 0,
        next_attempt_at=cursor.next_attempt_at if cursor else None,
        last_exported_at=cursor.last_exported_at if cursor else None,
        last_error=cursor.last_error if cursor else "",
    )


def audit_export_status(*, destination: str) -> AuditExportStatus:
    """The export's position against the chain head (two or three queries)."""
    head = AuditChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
    cursor = AuditExport.objects.filter(destination=destination).first()
    exported = cursor.exported_sequence if cursor else 0
    oldest = None
    if head > exported:
        oldest = (
            AuditEvent.objects.filter(sequence=exported + 1)
            .values_list("occurred_at", flat=True)
            .first()
        )
    return AuditExportStatus(
        destination=destination,
        head_sequence=head,
        exported_sequence=exported,
        lag_events=max(0, head - exported),
        oldest_pending_at=oldest,
        lag_seconds=max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0,
        state=cursor.state if cursor else "never run",
        failures=cursor.failures if cursor else 0,
        next_attempt_at=cursor.next_attempt_at if cursor else None,
        last_exported_at=cursor.last_exported_at if cursor else None,
        last_error=cursor.last_error if cursor else "",
    )

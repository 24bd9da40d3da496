"""Walks the chain and names the first event that does not hold.

A redacted payload holds only the redaction marker and is accepted only when a later,
intact `audit.payloads_redacted` event names it by sequence and payload digest: a
payload overwritten by someone with table rights, who set `redacted_at` themselves,
reads as tampering, not as a redaction.

Checkpoints: while walking, the Merkle root of the events so far is kept, and at every
stored checkpoint's size (and at an exported checkpoint's, given by the caller) it must
equal the signed root. A checkpoint larger than the ledger means its newest events were
removed, even when the chain head row was rewritten to match what is left.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from portal.audit.checkpoints import CheckpointClaims, checkpoint_claims_of, event_leaf
from portal.audit.hashing import event_hash, payload_digest
from portal.audit.merkle import RootAccumulator
from portal.audit.models import (
    GENESIS_HASH,
    REDACTED_PAYLOAD,
    REDACTION_ACTION,
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
)


class _Row(NamedTuple):
    """One event and its payload as the walk reads them (values_list, in this order)."""

    sequence: int
    occurred_at: datetime
    actor_type: str
    actor_id: str
    action: str
    object_type: str
    object_id: str
    payload_digest: str
    prev_hash: str
    hash: str
    payload_pk: int | None
    data: Any
    client_ip: str | None
    redacted_at: datetime | None


_ROW_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "payload_digest",
    "prev_hash",
    "hash",
    "payload_record__pk",
    "payload_record__data",
    "payload_record__client_ip",
    "payload_record__redacted_at",
)


@dataclass(frozen=True)
class _Redacted:
    payload_digest: str
    object_type: str
    object_id: str


def _named_by_redaction(
    event: "_Row", data: dict[str, Any], pending: dict[int, _Redacted]
) -> str | None:
    """Take the redacted payloads a redaction event names off `pending`; say why not."""
    entries = data.get("events")
    if entries is None:
        # Written before redaction events named their events: it vouches for as many
        # earlier redacted payloads of the same object as it counted.
        count = data.get("count")
        if not isinstance(count, int):
            return "it is a redaction event that names no events"
        same_object = [
            sequence
            for sequence, redacted in sorted(pending.items())
            if (redacted.object_type, redacted.object_id) == (event.object_type, event.object_id)
        ]
        for sequence in same_object[:count]:
            del pending[sequence]
        return None
    if not isinstance(entries, list):
        return "it is a redaction event that names no events"
    for entry in entries:
        sequence = entry.get("sequence") if isinstance(entry, dict) else None
        redacted = pending.get(sequence) if isinstance(sequence, int) else None
        if redacted is None or redacted.payload_digest != entry.get("payload_digest"):
            return f"it names event #{sequence} as redacted, which does not hold"
        del pending[sequence]
    return None


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    redacted: int
    head_hash: str
    broken_sequence: int | None = None
    reason: str = ""
    checkpoints: int = 0

    def summary(self) -> str:
        if self.ok:
            return (
                f"audit chain intact: {self.checked} events checked, "
                f"{self.redacted} redacted payloads, {self.checkpoints} checkpoints matched, "
                f"head {self.head_hash[:16]}"
            )
        return f"audit chain broken at event #{self.broken_sequence}: {self.reason}"


def audit_chain_verify(
    *, checkpoints: Sequence[CheckpointClaims] = (), chunk_size: int = 2000
) -> ChainReport:
    """Recompute every hash in sequence order; stop at the first event that is wrong.

    Every stored checkpoint and every one in `checkpoints` (already signature-checked,
    e.g. an exported file) must match the tree at its size.
    """
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = redacted = 0
    # Redacted payloads not yet named by a redaction event, by sequence.
    pending: dict[int, _Redacted] = {}
    tree = RootAccumulator()
    stored = [checkpoint_claims_of(row) for row in AuditCheckpoint.objects.order_by("tree_size")]
    due = sorted([*stored, *checkpoints], key=lambda claims: claims.tree_size)
    matched = 0

    def broken(sequence: int, reason: str) -> ChainReport:
        return ChainReport(False, checked, redacted, expected_prev, sequence, reason, matched)

    # Plain rows, not model instances: building an instance per event cost a quarter of
    # the walk. The payload comes through its one-to-one join (None when it is missing).
    rows = (
        AuditEvent.objects.order_by("sequence")
        .values_list(*_ROW_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        event = _Row(*row)
        if event.sequence != expected_sequence:
            return broken(expected_sequence, f"event #{expected_sequence} is missing")
        if event.prev_hash != expected_prev:
            return broken(event.sequence, "previous hash does not match the event before it")
        recomputed = event_hash(
            sequence=event.sequence,
            occurred_at=event.occurred_at,
            actor_type=event.actor_type,
            actor_id=event.actor_id,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            payload_digest=event.payload_digest,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            return broken(event.sequence, "its fields do not match its hash")
        if event.payload_pk is None:
            return broken(event.sequence, "its payload is missing")
        if event.redacted_at is not None:
            if event.data != REDACTED_PAYLOAD or event.client_ip is not None:
                return broken(event.sequence, "its payload is marked redacted but holds data")
            pending[event.sequence] = _Redacted(
                event.payload_digest, event.object_type, event.object_id
            )
            redacted += 1
        elif payload_digest(event.data, event.client_ip) != event.payload_digest:
            return broken(event.sequence, "its payload does not match the digest in the chain")
        elif event.action == REDACTION_ACTION and isinstance(event.data, dict):
            problem = _named_by_redaction(event, event.data, pending)
            if problem:
                return broken(event.sequence, problem)
        expected_prev = event.hash
        expected_sequence += 1
        checked += 1
        tree.append(event_leaf(event.hash))
        while due and due[0].tree_size == checked:
            claims = due.pop(0)
            if (tree.root().hex(), event.hash) != (claims.root_hash, claims.head_hash):
                return broken(
                    event.sequence,
                    f"the ledger's first {checked} events differ from {claims.describe()}",
                )
            matched += 1

    if pending:
        return broken(min(pending), "its payload is redacted but no redaction event names it")
    if due:
        claims = due[-1]
        return broken(
            checked + 1,
            f"the ledger ends at event #{checked} but {claims.describe()} covers "
            f"{claims.tree_size} events: the newest events were removed",
        )
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.sequence, head.hash) != (checked, expected_prev):
        return broken(head.sequence, "the chain head does not match the last event")
    return ChainReport(True, checked, redacted, expected_prev, checkpoints=matched)

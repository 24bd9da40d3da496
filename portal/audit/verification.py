"""Walks the chain and names the first event that does not hold."""

from dataclasses import dataclass

from portal.audit.hashing import event_hash, payload_digest
from portal.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    redacted: int
    head_hash: str
    broken_sequence: int | None = None
    reason: str = ""

    def summary(self) -> str:
        if self.ok:
            return (
                f"audit chain intact: {self.checked} events checked, "
                f"{self.redacted} redacted payloads, head {self.head_hash[:16]}"
            )
        return f"audit chain broken at event #{self.broken_sequence}: {self.reason}"


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainReport:
    """Recompute every hash in sequence order; stop at the first event that is wrong."""
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = redacted = 0

    def broken(sequence: int, reason: str) -> ChainReport:
        return ChainReport(False, checked, redacted, expected_prev, sequence, reason)

    events = AuditEvent.objects.select_related("payload_record").order_by("sequence")
    for event in events.iterator(chunk_size=chunk_size):
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
        payload = getattr(event, "payload_record", None)
        if payload is None:
            return broken(event.sequence, "its payload is missing")
        if payload.redacted_at is not None:
            redacted += 1
        elif payload_digest(payload.data, payload.client_ip) != event.payload_digest:
            return broken(event.sequence, "its payload does not match the digest in the chain")
        expected_prev = event.hash
        expected_sequence += 1
        checked += 1

    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.sequence, head.hash) != (checked, expected_prev):
        return broken(head.sequence, "the chain head does not match the last event")
    return ChainReport(True, checked, redacted, expected_prev)

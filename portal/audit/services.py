"""Writes to the audit ledger. Every state change in the portal goes through here.

Lock order, one for the whole portal: the rows of the object being changed first (a
version, its review, an outbox row), the audit chain head last, and no lock held
across a call to an outside system. `audit_record` locks the head until the caller's
transaction ends, so everything else a transaction locks it must lock before its first
audit event; a transaction that waits for a row while holding the head can close a
circle with one holding that row and waiting for the head.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.audit.actors import Actor
from portal.audit.appending import (
    NewEvent,
    chain_append,
    chain_head_lock,
    client_ip_stored_form,
)
from portal.audit.checkpoints import checkpoint_statement_sign, event_leaf
from portal.audit.hashing import (
    canonical_payload_json,
    event_body,
    normalise_payload,
    occurred_at_text,
    payload_body,
)
from portal.audit.merkle import RootAccumulator
from portal.audit.models import (
    GENESIS_HASH,
    REDACTED_PAYLOAD,
    REDACTION_ACTION,
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditPayload,
)


def audit_record(
    *,
    action: str,
    actor: Actor,
    object_type: str = "",
    object_id: str | int = "",
    payload: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction.

    Call it in the same transaction as the change it records, so that the change and
    its record commit or roll back together. Payloads carry pseudonymous ids, not
    personal data. Costs two statements on PostgreSQL (lock the head, write the rows;
    portal.audit.appending) and no savepoint: an error here fails the caller's whole
    transaction, as it must, since the change may not commit without its record.
    """
    data = normalise_payload(payload)
    client_ip = client_ip_stored_form(client_ip)
    data_json = canonical_payload_json(data)
    digest = hashlib.sha256(payload_body(data_json, client_ip)).hexdigest()
    with transaction.atomic(savepoint=False):
        head = chain_head_lock()
        occurred_at = timezone.now()
        sequence = head.sequence + 1
        fields = {
            "sequence": sequence,
            "occurred_at": occurred_at,
            "actor_type": str(actor.type),
            "actor_id": actor.id,
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            "payload_digest": digest,
            "prev_hash": head.hash,
        }
        # event_body is event_hash's canonical encoding, byte for byte, without the dict.
        body = event_body(
            sequence,
            occurred_at_text(occurred_at),
            fields["actor_type"],
            actor.id,
            action,
            object_type,
            fields["object_id"],
            digest,
            head.hash,
        )
        fields["hash"] = hashlib.sha256(body).hexdigest()
        return chain_append(
            NewEvent(fields=fields, data=data, data_json=data_json, client_ip=client_ip)
        )


@dataclass(frozen=True)
class RedactionResult:
    redacted: int


def audit_payloads_redact(
    *, object_type: str, object_id: str, reason: str, actor: Actor
) -> RedactionResult:
    """Overwrite the payloads of every event about one object (a GDPR erasure).

    The events and their hashes stay. Side effects: audit `audit.payloads_redacted`,
    whose payload names each redacted event by sequence and payload digest, which is
    what verification accepts a redacted payload against. Earlier redaction events are
    left as they are: they are the proof, and hold no personal data.
    """
    with transaction.atomic():
        payloads = (
            AuditPayload.objects.select_for_update(of=("self",))
            .filter(
                event__object_type=object_type,
                event__object_id=object_id,
                redacted_at__isnull=True,
            )
            .exclude(event__action=REDACTION_ACTION)
        )
        named = list(
            payloads.order_by("event__sequence").values_list(
                "event_id", "event__sequence", "event__payload_digest"
            )
        )
        count = AuditPayload.objects.filter(event_id__in=[pk for pk, _, _ in named]).update(
            data=REDACTED_PAYLOAD,
            client_ip=None,
            redacted_at=timezone.now(),
            redaction_reason=reason[:200],
        )
        audit_record(
            action=REDACTION_ACTION,
            actor=actor,
            object_type=object_type,
            object_id=object_id,
            payload={
                "count": count,
                "reason": reason[:200],
                "events": [
                    {"sequence": sequence, "payload_digest": digest}
                    for _, sequence, digest in named
                ],
            },
        )
    return RedactionResult(redacted=count)


class AuditCheckpointRefused(Exception):
    """The ledger's newest events do not continue the chain; no checkpoint is signed."""


def audit_checkpoint_create() -> AuditCheckpoint | None:
    """Sign a checkpoint of the ledger as committed now; None when nothing was appended
    since the last one (or the ledger is empty).

    Reads without a lock: committed events up to the head's sequence never change (the
    table is append-only and the head moves in the same transaction as its event), so
    this reads the head, then hashes only the events after the previous checkpoint,
    continuing its Merkle frontier. Each new event must follow the previous one's hash,
    so a gap or a rewritten link is refused (AuditCheckpointRefused) rather than signed;
    the full recomputation is `audit_verify`'s. The row is written under the chain
    head's lock, for a moment, and not when a checkpoint as large or larger committed
    meanwhile (that one is returned instead): checkpoints commit in the order of their
    sizes, so none commits behind one the Cloud Logging export has passed. Side effects:
    one AuditCheckpoint row. It is not itself an audit event, or every checkpoint would
    leave the ledger one event ahead of it.
    """
    head = AuditChainHead.objects.filter(pk=1).first()
    previous = AuditCheckpoint.objects.order_by("-tree_size").first()
    if head is None or head.sequence == 0:
        return None
    if previous is not None and previous.tree_size >= head.sequence:
        return None
    if previous is None:
        tree, last_hash = RootAccumulator(), GENESIS_HASH
    else:
        frontier = [bytes.fromhex(digest) for digest in previous.frontier]
        tree, last_hash = RootAccumulator(previous.tree_size, frontier), previous.head_hash
    events = (
        AuditEvent.objects.filter(sequence__gt=tree.size, sequence__lte=head.sequence)
        .order_by("sequence")
        .values_list("sequence", "prev_hash", "hash")
    )
    for sequence, prev_hash, hash_hex in events.iterator(chunk_size=5000):
        if sequence != tree.size + 1 or prev_hash != last_hash:
            raise AuditCheckpointRefused(f"event #{tree.size + 1} does not continue the chain")
        tree.append(event_leaf(hash_hex))
        last_hash = hash_hex
    if tree.size != head.sequence or last_hash != head.hash:
        raise AuditCheckpointRefused(f"the chain head #{head.sequence} is not the last event")
    root_hash = tree.root().hex()
    statement, key_id = checkpoint_statement_sign(
        tree_size=tree.size, root_hash=root_hash, head_hash=last_hash
    )
    try:
        with transaction.atomic():
            # Checkpoints commit in the order of their sizes, which the Cloud Logging
            # export's cursor relies on: under the head's lock (briefly, at the end),
            # one signed meanwhile by another worker at this size or larger wins.
            chain_head_lock()
            latest = AuditCheckpoint.objects.order_by("-tree_size").first()
            if latest is not None and latest.tree_size >= tree.size:
                return latest
            return AuditCheckpoint.objects.create(
                tree_size=tree.size,
                root_hash=root_hash,
                head_hash=last_hash,
                issued_at=timezone.now(),
                key_id=key_id,
                statement=statement,
                frontier=[digest.hex() for digest in tree.frontier],
            )
    except IntegrityError:
        # Another worker signed the same size first; its root is the same one.
        return AuditCheckpoint.objects.get(tree_size=tree.size)

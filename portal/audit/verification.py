"""Walks the chain and names the first event that does not hold.

A redacted payload holds only the redaction marker and is accepted only when a later,
intact `audit.payloads_redacted` event names it by sequence and payload digest: a
payload overwritten by someone with table rights, who set `redacted_at` themselves,
reads as tampering, not as a redaction.

Checkpoints: while walking, the Merkle root of the events so far is kept, and at every
stored checkpoint's size (and at an exported checkpoint's, given by the caller) it must
equal the signed root. A checkpoint larger than the ledger means its newest events were
removed, even when the chain head row was rewritten to match what is left.

Speed: the walk reads plain rows through one server-side cursor (the event time already
as the text the chain hashes, the payload as the JSON column's text) and rebuilds each
event's canonical bytes with `portal.audit.hashing.event_body` and
`payload_digest_matches`, which give the reference encoding's bytes without building a
dict per event; building instances and json.dumps per event cost ~90 s per million.
"""

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import F, TextField
from django.db.models.functions import Cast

from portal.audit.checkpoints import CheckpointClaims, checkpoint_claims_of
from portal.audit.hashing import (
    EVENT_COLUMNS,
    event_body,
    occurred_at_text,
    payload_digest_matches,
)
from portal.audit.merkle import RootAccumulator, leaf_hash
from portal.audit.models import (
    GENESIS_HASH,
    REDACTED_PAYLOAD,
    REDACTION_ACTION,
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditPayload,
)

# One row of the walk, in this order: sequence, occurred_at (occurred_at_text's form),
# actor_type, actor_id, action, object_type, object_id, payload_digest, prev_hash, hash,
# has_payload, data_text (the JSON column's text, None without a payload), client_ip,
# is_redacted.
_WalkRow = tuple[
    int, str, str, str, str, str, str, str, str, str, bool, str | None, str | None, bool
]

# The event time is formatted by PostgreSQL as occurred_at_text does (UTC, microseconds,
# `+00:00`); a year before 1 AD, which no Python datetime holds, gets ` BC` appended
# so it can never pass for the year it would otherwise print as.
_POSTGRES_WALK = """
SELECT e.sequence,
       to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
         || CASE WHEN e.occurred_at < '0001-01-01T00:00:00Z' THEN ' BC' ELSE '' END,
       e.actor_type, e.actor_id, e.action, e.object_type, e.object_id,
       e.payload_digest, e.prev_hash, e.hash,
       p.event_id IS NOT NULL, p.data::text, p.client_ip, p.redacted_at IS NOT NULL
FROM {events} e LEFT JOIN {payloads} p ON p.event_id = e.id
ORDER BY e.sequence
"""


@dataclass(frozen=True)
class _Redacted:
    payload_digest: str
    object_type: str
    object_id: str


def _named_by_redaction(
    object_key: tuple[str, str], data: dict[str, Any], pending: dict[int, _Redacted]
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
            if (redacted.object_type, redacted.object_id) == object_key
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

    # closing(): a walk that stops at a broken event ends its cursor and transaction
    # there and then, not whenever the generator is collected.
    with closing(_walk_rows(chunk_size)) as rows:
        for (
            sequence,
            occurred_at,
            actor_type,
            actor_id,
            action,
            object_type,
            object_id,
            digest,
            prev_hash,
            hash_hex,
            has_payload,
            data_text,
            client_ip,
            is_redacted,
        ) in rows:
            if sequence != expected_sequence:
                return broken(expected_sequence, f"event #{expected_sequence} is missing")
            if prev_hash != expected_prev:
                return broken(sequence, "previous hash does not match the event before it")
            body = event_body(
                sequence,
                occurred_at,
                actor_type,
                actor_id,
                action,
                object_type,
                object_id,
                digest,
                prev_hash,
            )
            if hashlib.sha256(body).hexdigest() != hash_hex:
                return broken(sequence, "its fields do not match its hash")
            if not has_payload or data_text is None:
                return broken(sequence, "its payload is missing")
            if is_redacted:
                if json.loads(data_text) != REDACTED_PAYLOAD or client_ip is not None:
                    return broken(sequence, "its payload is marked redacted but holds data")
                pending[sequence] = _Redacted(digest, object_type, object_id)
                redacted += 1
            elif not payload_digest_matches(data_text, client_ip, digest):
                return broken(sequence, "its payload does not match the digest in the chain")
            elif action == REDACTION_ACTION:
                data = json.loads(data_text)
                if isinstance(data, dict):
                    problem = _named_by_redaction((object_type, object_id), data, pending)
                    if problem:
                        return broken(sequence, problem)
            expected_prev = hash_hex
            expected_sequence += 1
            checked += 1
            # The Merkle leaf of the event (checkpoints.event_leaf), inlined for the loop.
            tree.append(leaf_hash(bytes.fromhex(hash_hex)))
            while due and due[0].tree_size == checked:
                claims = due.pop(0)
                if (tree.root().hex(), hash_hex) != (claims.root_hash, claims.head_hash):
                    return broken(
                        sequence,
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


def _walk_rows(chunk_size: int) -> Iterator[_WalkRow]:
    """Every event with its payload, in sequence order, `chunk_size` rows per fetch,
    as plain tuples (see _WalkRow): no model instances, no parsed JSON."""
    if connection.vendor == "postgresql":
        sql = _POSTGRES_WALK.format(
            events=connection.ops.quote_name(AuditEvent._meta.db_table),
            payloads=connection.ops.quote_name(AuditPayload._meta.db_table),
        )
        # A server-side cursor inside a transaction streams the rows; one statement
        # reads one snapshot of the ledger.
        with transaction.atomic(), connection.chunked_cursor() as cursor:
            cursor.execute(sql)
            while rows := cursor.fetchmany(chunk_size):
                yield from rows
        return
    # Other databases (SQLite, the embedded default): the same columns through the ORM.
    rows = (
        AuditEvent.objects.order_by("sequence")
        .annotate(data_text=Cast(F("payload_record__data"), output_field=TextField()))
        .values_list(
            *EVENT_COLUMNS,
            "payload_record__pk",
            "data_text",
            "payload_record__client_ip",
            "payload_record__redacted_at",
        )
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        yield (
            row[0],
            occurred_at_text(row[1]),
            *row[2:10],
            row[10] is not None,
            row[11],
            row[12],
            row[13] is not None,
        )  # type: ignore[misc]

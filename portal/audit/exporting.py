"""The ledger's copy outside the portal's database: every event, in sequence order, and
every signed checkpoint, in the order of its size, as a structured entry in Cloud
Logging, exactly once each.

The outbox is the ledger itself plus one cursor row per destination (`AuditExport`):
the ledger is append-only and gap-free, so the events still owed are those after the
cursor. Each run takes the shared outbox steps (`portal.outbox`):

1. claim: lock the cursor row; refuse when another run holds its lease or the backoff
   after a failure has not run out; otherwise mark it `sending` for the batch up to
   `min(head, cursor + AUDIT_EXPORT_BATCH_SIZE)`.
2. send, holding no lock: read that batch, check it continues the chain from the
   cursor's hash, and write it with one `entries:write` (all or nothing).
3. record: lock the cursor again; move it to the batch's end, or count the failure and
   wait `EXPORT_BACKOFF` before the next attempt. Nothing is ever given up: a failing
   export keeps trying at the backoff's cap until a person fixes what is wrong.

Exactly once: each entry's `insertId` is the event's hash and its `timestamp` the
event's time, so a batch written again (an answer lost, a worker killed between the
write and the record) is dropped by Cloud Logging as a duplicate. In order: one cursor,
one run at a time (the lease), batches in sequence order.

Why every committed event is seen: `audit_record` holds the chain head's lock until
its transaction ends, so sequence N+1 cannot commit before N; the committed events are
always a prefix of the sequence, and the head row says how long it is.

The entry carries the event's chained fields and its payload's digest, not the
payload: payloads may hold personal data a GDPR redaction must be able to remove,
while the digest is enough to recompute every hash from the exported copy alone.

Checkpoints take the same steps on a cursor row of their own (CLOUD_LOGGING_CHECKPOINTS:
the last exported checkpoint's tree size and root hash), so an outage holds back and
retries each stream on its own. A checkpoint's entry is its exported file
(`checkpoint_document`: the signed statement beside its claims, the very JSON
`audit_verify --checkpoint` and the offline verifier read), with `insertId`
`checkpoint-<tree size>-<root hash>` and its signing time as `timestamp`, so it too is
stored once however often it is sent. Why every committed checkpoint is seen:
`audit_checkpoint_create` writes its row under the chain head's lock and never one
smaller than a committed one, so checkpoints commit in the order of their sizes and
those after the cursor are exactly the ones owed.

Lock order: the cursor row first, the chain head last (the stalled/resumed audit
events); no lock is held across the call to Cloud Logging. The export writes no audit
event for an ordinary batch: that event would itself be owed, and the export would
never be done.
"""

import logging
from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from portal.audit.actors import Actor
from portal.audit.checkpoints import checkpoint_document
from portal.audit.choices import ExportState
from portal.audit.clients import cloud_logging_writer
from portal.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditExport
from portal.audit.services import audit_record
from portal.outbox import Backoff, Outbox, lease_left, outbox_send
from worker.backends.cloudlogging import CloudLoggingWriter, LedgerLogEntry, LoggingUnavailable

logger = logging.getLogger(__name__)

CLOUD_LOGGING = "cloud_logging"
# The checkpoints' cursor: the same log, its own position, lease and backoff.
CLOUD_LOGGING_CHECKPOINTS = "cloud_logging_checkpoints"
WORKER = Actor.system("worker")
# Longer than one entries:write can take (the client's 60 s timeout): while it runs, a
# second run leaves the cursor alone.
EXPORT_LEASE = timedelta(seconds=120)
# 30 s, 1 min, 2 min, ... capped at 30 min: an outage of hours costs a few calls.
EXPORT_BACKOFF = Backoff(base_seconds=30, max_seconds=1800)
# Failures in a row (about 2 h with the backoff above) before the export says, in the
# ledger and the error log, that it is stalled.
EXPORT_STALLED_AFTER = 8
# Workers' clocks differ a little; a wake-up this early still counts as due.
CLOCK_SLACK = timedelta(seconds=5)


class ExportGap(Exception):
    """The batch read does not continue the chain from the cursor: events are missing
    or were changed since the cursor moved past them (audit_verify will say which)."""


@dataclass(frozen=True)
class ExportResult:
    """What one run did: `outcome` is "exported" (`count` events, the cursor now at
    `exported_sequence`), "up_to_date", "not_due", "leased", "retry" (after `retry_in`
    seconds), "taken_over" or "missing"."""

    outcome: str
    exported_sequence: int
    count: int = 0
    retry_in: int | None = None
    error: str = ""


def ledger_entry(event: AuditEvent, *, destination_log: str = "") -> LedgerLogEntry:
    """The structured entry one event becomes: its chained fields, the pseudonymous
    actor, and `insertId` = the event's hash so a retried write deduplicates."""
    occurred_at = event.occurred_at.astimezone(UTC)
    return LedgerLogEntry(
        insert_id=event.hash,
        timestamp=occurred_at,
        payload={
            "sequence": event.sequence,
            "hash": event.hash,
            "prev_hash": event.prev_hash,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "actor": event.actor_display,
            "actor_type": event.actor_type,
            "actor_id": event.actor_id,
            "occurred_at": occurred_at.isoformat(timespec="microseconds"),
            "payload_digest": event.payload_digest,
        },
        labels={"sequence": str(event.sequence), "action": event.action},
    )


def checkpoint_log_entry(checkpoint: AuditCheckpoint) -> LedgerLogEntry:
    """The structured entry one signed checkpoint becomes: its exported file's fields
    (checkpoint_document, so the jsonPayload saved as a file is what `audit_verify
    --checkpoint` and the offline verifier read), `insertId` from its tree size and root
    so a retried write deduplicates, and its signing time as the entry's time."""
    return LedgerLogEntry(
        insert_id=f"checkpoint-{checkpoint.tree_size}-{checkpoint.root_hash}",
        timestamp=checkpoint.issued_at.astimezone(UTC),
        payload=checkpoint_document(checkpoint),
        labels={"kind": "checkpoint", "tree_size": str(checkpoint.tree_size)},
    )


@dataclass(frozen=True)
class _Sent:
    """A batch written: the cursor's new position and hash, and how many entries."""

    position: int
    hash: str
    count: int


class _CursorOutbox(Outbox[AuditExport, _Sent, ExportResult]):
    """One cursor row on the shared claim -> lease -> send -> record steps; subclasses
    say where the next batch ends (`next_batch_end`) and write it (`send`)."""

    model = AuditExport
    errors = (LoggingUnavailable, ExportGap)

    def __init__(self, writer: CloudLoggingWriter, batch_size: int) -> None:
        self.writer = writer
        self.batch_size = batch_size

    @abstractmethod
    def next_batch_end(self, row: AuditExport) -> int | None:
        """Under the claim's lock: the position the next batch ends at, or None when
        nothing is owed."""

    def missing(self, pk: int) -> ExportResult:
        return ExportResult("missing", exported_sequence=0)

    def claim(self, row: AuditExport, now: datetime) -> ExportResult | None:
        if row.state == ExportState.SENDING:
            left = lease_left(taken_at=row.attempted_at, lease=EXPORT_LEASE, now=now)
            if left is not None:
                return ExportResult(
                    "leased",
                    exported_sequence=row.exported_sequence,
                    retry_in=int(left.total_seconds()) + 1,
                )
            # That run died, perhaps after writing: the same batch again deduplicates.
        elif row.next_attempt_at > now + CLOCK_SLACK:
            return ExportResult(
                "not_due",
                exported_sequence=row.exported_sequence,
                retry_in=int((row.next_attempt_at - now).total_seconds()) + 1,
            )
        batch_end = self.next_batch_end(row)
        if batch_end is None:
            if row.state == ExportState.SENDING:
                row.state = ExportState.IDLE
                row.save(update_fields=["state"])
            return ExportResult("up_to_date", exported_sequence=row.exported_sequence)
        row.state = ExportState.SENDING
        row.batch_end = batch_end
        row.attempts += 1
        row.attempted_at = now
        row.save(update_fields=["state", "batch_end", "attempts", "attempted_at"])
        return None

    def in_flight(self, row: AuditExport) -> bool:
        return row.state == ExportState.SENDING

    def taken_over(self, row: AuditExport) -> ExportResult:
        return ExportResult("taken_over", exported_sequence=row.exported_sequence)

    def record(
        self,
        row: AuditExport,
        *,
        outcome: _Sent | None,
        error: Exception | None,
        now: datetime,
    ) -> ExportResult:
        if error is not None:
            row.state = ExportState.IDLE
            row.failures += 1
            wait = EXPORT_BACKOFF.seconds(row.failures)
            row.next_attempt_at = now + timedelta(seconds=wait)
            retryable = getattr(error, "retryable", False)
            kind = "outage" if retryable else "needs a person"
            row.last_error = f"{kind}: {error}"[:500]
            row.save()
            logger.warning(
                "audit export to %s failed (%s in a row), next try in %s s: %s",
                row.destination,
                row.failures,
                wait,
                error,
            )
            if row.failures == EXPORT_STALLED_AFTER:
                logger.error("audit export to %s is stalled: %s", row.destination, error)
                _audit_export(row, "audit.export_stalled", error=row.last_error)
            return ExportResult(
                "retry",
                exported_sequence=row.exported_sequence,
                retry_in=wait,
                error=row.last_error,
            )
        # Narrows the type for the checker: without an error the send returned.
        assert outcome is not None  # nosec B101
        stalled = row.failures >= EXPORT_STALLED_AFTER
        row.exported_sequence, row.exported_hash = outcome.position, outcome.hash
        row.state, row.failures, row.last_error = ExportState.IDLE, 0, ""
        row.last_exported_at = row.next_attempt_at = now
        row.save()
        if stalled:
            _audit_export(row, "audit.export_resumed")
        return ExportResult("exported", exported_sequence=outcome.position, count=outcome.count)


class _LedgerExportOutbox(_CursorOutbox):
    """The events: the cursor is the last exported event's sequence and hash."""

    def next_batch_end(self, row: AuditExport) -> int | None:
        head = AuditChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first()
        if not head or head <= row.exported_sequence:
            return None
        return min(head, row.exported_sequence + self.batch_size)

    def send(self, row: AuditExport) -> _Sent:
        """Read the batch, check it continues the chain, write it."""
        events = list(
            AuditEvent.objects.filter(
                sequence__gt=row.exported_sequence, sequence__lte=row.batch_end
            ).order_by("sequence")
        )
        expected_prev, expected_sequence = row.exported_hash, row.exported_sequence + 1
        for event in events:
            if event.sequence != expected_sequence or event.prev_hash != expected_prev:
                raise ExportGap(
                    f"event #{expected_sequence} does not follow #{expected_sequence - 1} "
                    "in the chain; run audit_verify"
                )
            expected_prev, expected_sequence = event.hash, expected_sequence + 1
        if expected_sequence != row.batch_end + 1:
            raise ExportGap(f"events up to #{row.batch_end} are missing; run audit_verify")
        self.writer.entries_write([ledger_entry(event) for event in events])
        return _Sent(events[-1].sequence, events[-1].hash, len(events))


class _CheckpointExportOutbox(_CursorOutbox):
    """The signed checkpoints: the cursor is the last exported checkpoint's tree size
    and root hash. Checkpoints commit in the order of their sizes (audit_checkpoint_create
    signs under the chain head's lock and never behind a larger one), so those still
    owed are exactly the ones larger than the cursor."""

    def next_batch_end(self, row: AuditExport) -> int | None:
        sizes = list(
            AuditCheckpoint.objects.filter(tree_size__gt=row.exported_sequence)
            .order_by("tree_size")
            .values_list("tree_size", flat=True)[: self.batch_size]
        )
        return sizes[-1] if sizes else None

    def send(self, row: AuditExport) -> _Sent:
        checkpoints = list(
            AuditCheckpoint.objects.filter(
                tree_size__gt=row.exported_sequence, tree_size__lte=row.batch_end
            ).order_by("tree_size")
        )
        if not checkpoints or checkpoints[-1].tree_size != row.batch_end:
            raise ExportGap(
                f"the checkpoint of {row.batch_end} events is missing; run audit_verify"
            )
        self.writer.entries_write([checkpoint_log_entry(cp) for cp in checkpoints])
        last = checkpoints[-1]
        return _Sent(last.tree_size, last.root_hash, len(checkpoints))


def _audit_export(row: AuditExport, action: str, **extra: object) -> None:
    audit_record(
        action=action,
        actor=WORKER,
        object_type="audit_export",
        object_id=row.destination,
        payload={
            "exported_sequence": row.exported_sequence,
            "failures": row.failures,
            **extra,
        },
    )


def ledger_export_send(
    *,
    writer: CloudLoggingWriter | None = None,
    batch_size: int | None = None,
    max_batches: int = 20,
) -> list[ExportResult]:
    """Export the events not yet in Cloud Logging, batch after batch, until up to date,
    refused (lease held, backoff running) or `max_batches` were written.

    Returns each run's result (empty when the export is off). Side effects: the
    entries in Cloud Logging; the cursor row; audit `audit.export_stalled` after
    EXPORT_STALLED_AFTER failures in a row and `audit.export_resumed` when it recovers.
    Raises LoggingUnavailable when the writer cannot be built (no credentials).
    """
    writer = writer or cloud_logging_writer()
    if writer is None:
        return []
    outbox = _LedgerExportOutbox(writer, batch_size or settings.AUDIT_EXPORT_BATCH_SIZE)
    return _send_batches(outbox, CLOUD_LOGGING, max_batches)


def checkpoint_export_send(
    *,
    writer: CloudLoggingWriter | None = None,
    batch_size: int | None = None,
    max_batches: int = 20,
) -> list[ExportResult]:
    """Export the signed checkpoints not yet in Cloud Logging (to the events' log), as
    ledger_export_send does the events, on a cursor of their own: an outage of one
    holds back neither the other's entries nor its backoff. `count` in each result is
    the checkpoints written. Same side effects and errors, with the stalled and
    resumed events naming CLOUD_LOGGING_CHECKPOINTS."""
    writer = writer or cloud_logging_writer()
    if writer is None:
        return []
    outbox = _CheckpointExportOutbox(writer, batch_size or settings.AUDIT_EXPORT_BATCH_SIZE)
    return _send_batches(outbox, CLOUD_LOGGING_CHECKPOINTS, max_batches)


def _send_batches(outbox: _CursorOutbox, destination: str, max_batches: int) -> list[ExportResult]:
    cursor, _ = AuditExport.objects.get_or_create(destination=destination)
    results = []
    for _ in range(max_batches):
        result = outbox_send(outbox, cursor.pk)
        results.append(result)
        if result.outcome != "exported":
            break
    return results

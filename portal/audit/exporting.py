"""The ledger's copy outside the portal's database: every event, in sequence order, as
a structured entry in Cloud Logging, exactly once per event.

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

Lock order: the cursor row first, the chain head last (the stalled/resumed audit
events); no lock is held across the call to Cloud Logging. The export writes no audit
event for an ordinary batch: that event would itself be owed, and the export would
never be done.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from portal.audit.actors import Actor
from portal.audit.choices import ExportState
from portal.audit.clients import cloud_logging_writer
from portal.audit.models import AuditChainHead, AuditEvent, AuditExport
from portal.audit.services import audit_record
from portal.outbox import Backoff, Outbox, lease_left, outbox_send
from worker.backends.cloudlogging import CloudLoggingWriter, LedgerLogEntry, LoggingUnavailable

logger = logging.getLogger(__name__)

CLOUD_LOGGING = "cloud_logging"
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


class _LedgerExportOutbox(Outbox[AuditExport, tuple[int, str], ExportResult]):
    """The cursor row on the shared claim -> lease -> send -> record steps."""

    model = AuditExport
    errors = (LoggingUnavailable, ExportGap)

    def __init__(self, writer: CloudLoggingWriter, batch_size: int) -> None:
        self.writer = writer
        self.batch_size = batch_size

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
        head = AuditChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first()
        if not head or head <= row.exported_sequence:
            if row.state == ExportState.SENDING:
                row.state = ExportState.IDLE
                row.save(update_fields=["state"])
            return ExportResult("up_to_date", exported_sequence=row.exported_sequence)
        row.state = ExportState.SENDING
        row.batch_end = min(head, row.exported_sequence + self.batch_size)
        row.attempts += 1
        row.attempted_at = now
        row.save(update_fields=["state", "batch_end", "attempts", "attempted_at"])
        return None

    def send(self, row: AuditExport) -> tuple[int, str]:
        """Read the batch, check it continues the chain, write it. Returns its last
        (sequence, hash)."""
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
        return events[-1].sequence, events[-1].hash

    def in_flight(self, row: AuditExport) -> bool:
        return row.state == ExportState.SENDING

    def taken_over(self, row: AuditExport) -> ExportResult:
        return ExportResult("taken_over", exported_sequence=row.exported_sequence)

    def record(
        self,
        row: AuditExport,
        *,
        outcome: tuple[int, str] | None,
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
        sequence, event_hash = outcome
        count = sequence - row.exported_sequence
        stalled = row.failures >= EXPORT_STALLED_AFTER
        row.exported_sequence, row.exported_hash = sequence, event_hash
        row.state, row.failures, row.last_error = ExportState.IDLE, 0, ""
        row.last_exported_at = row.next_attempt_at = now
        row.save()
        if stalled:
            _audit_export(row, "audit.export_resumed")
        return ExportResult("exported", exported_sequence=sequence, count=count)


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
    cursor, _ = AuditExport.objects.get_or_create(destination=CLOUD_LOGGING)
    outbox = _LedgerExportOutbox(writer, batch_size or settings.AUDIT_EXPORT_BATCH_SIZE)
    results = []
    for _ in range(max_batches):
        result = outbox_send(outbox, cursor.pk)
        results.append(result)
        if result.outcome != "exported":
            break
    return results

"""The ledger's copy in Cloud Logging: written through the official client's REST
transport to a local stand-in speaking `entries:write`, every event and every signed
checkpoint once, in order, through outages, a dead worker and a stalled export; and the
operator's lag command."""

import json
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal.attestation import public_jwks
from portal.audit.actors import Actor
from portal.audit.checkpoints import checkpoint_document_verify
from portal.audit.choices import ExportState
from portal.audit.exporting import (
    CLOUD_LOGGING,
    CLOUD_LOGGING_CHECKPOINTS,
    EXPORT_LEASE,
    EXPORT_STALLED_AFTER,
    checkpoint_export_send,
    ledger_export_send,
)
from portal.audit.hashing import event_hash
from portal.audit.models import AuditCheckpoint, AuditEvent, AuditExport
from portal.audit.services import audit_checkpoint_create, audit_record
from portal.audit.tasks import export_ledger
from tests.fakes.cloudlogging_server import FakeCloudLoggingServer
from worker.backends.cloudlogging import CloudLoggingWriter

pytestmark = pytest.mark.django_db

PROJECT = "zm-audit-archive"
LOG = f"projects/{PROJECT}/logs/portal-audit-ledger"
ACTOR = Actor("user", "u-7f3a")


@pytest.fixture
def logging_api():
    with FakeCloudLoggingServer() as fake:
        yield fake


@pytest.fixture
def writer(logging_api) -> CloudLoggingWriter:
    return CloudLoggingWriter(project=PROJECT, api_endpoint=logging_api.url)


def _append(count: int) -> list[AuditEvent]:
    return [
        audit_record(
            action="review.decided",
            actor=ACTOR,
            object_type="review",
            object_id=n,
            payload={"comment": f"decision {n}"},
        )
        for n in range(count)
    ]


def _cursor() -> AuditExport:
    return AuditExport.objects.get(destination=CLOUD_LOGGING)


def _stored_sequences(logging_api) -> list[int]:
    return [
        entry["jsonPayload"]["sequence"]
        for entry in logging_api.stored
        if entry.get("labels", {}).get("kind") != "checkpoint"
    ]


def test_export_writes_every_event_in_order_as_structured_entries(logging_api, writer):
    events = _append(7)

    results = ledger_export_send(writer=writer, batch_size=3)

    assert [(r.outcome, r.count) for r in results] == [
        ("exported", 3),
        ("exported", 3),
        ("exported", 1),
        ("up_to_date", 0),
    ]
    writes = logging_api.writes()
    assert [len(w.body["entries"]) for w in writes] == [3, 3, 1]
    first = writes[0].body
    assert first["logName"] == LOG
    assert first["partialSuccess"] is False  # a batch is written whole or not at all
    entry = first["entries"][0]
    event = events[0]
    assert entry["insertId"] == event.hash
    assert entry["resource"] == {"type": "global", "labels": {"project_id": PROJECT}}
    assert entry["labels"] == {"sequence": str(event.sequence), "action": "review.decided"}
    assert entry["timestamp"].startswith(event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert entry["jsonPayload"] == {
        "sequence": event.sequence,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
        "action": "review.decided",
        "object_type": "review",
        "object_id": "0",
        "actor": "user:u-7f3a",
        "actor_type": "user",
        "actor_id": "u-7f3a",
        "occurred_at": entry["jsonPayload"]["occurred_at"],
        "payload_digest": event.payload_digest,
    }
    assert "comment" not in str(entry)  # the payload stays in the database
    assert _stored_sequences(logging_api) == [e.sequence for e in events]
    cursor = _cursor()
    assert (cursor.exported_sequence, cursor.exported_hash) == (
        events[-1].sequence,
        events[-1].hash,
    )


def test_export_entries_carry_enough_to_recompute_every_hash(logging_api, writer):
    _append(3)
    ledger_export_send(writer=writer)

    previous = "0" * 64
    for entry in logging_api.stored:
        fields = entry["jsonPayload"]
        recomputed = event_hash(
            sequence=fields["sequence"],
            occurred_at=AuditEvent.objects.get(sequence=fields["sequence"]).occurred_at,
            actor_type=fields["actor_type"],
            actor_id=fields["actor_id"],
            action=fields["action"],
            object_type=fields["object_type"],
            object_id=fields["object_id"],
            payload_digest=fields["payload_digest"],
            prev_hash=previous,
        )
        assert recomputed == fields["hash"] == entry["insertId"]
        previous = fields["hash"]


def test_export_through_an_outage_backs_off_then_sends_each_event_once(logging_api, writer):
    events = _append(4)
    logging_api.fail(503, times=None)

    first = ledger_export_send(writer=writer)
    assert [(r.outcome, r.retry_in) for r in first] == [("retry", 30)]
    cursor = _cursor()
    assert (cursor.exported_sequence, cursor.failures, cursor.state) == (0, 1, ExportState.IDLE)
    assert cursor.last_error.startswith("outage: entries:write: 503")

    # During the backoff a run does not call Cloud Logging at all.
    calls = len(logging_api.writes())
    assert ledger_export_send(writer=writer)[0].outcome == "not_due"
    assert len(logging_api.writes()) == calls

    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        second = ledger_export_send(writer=writer)
    assert [(r.outcome, r.retry_in) for r in second] == [("retry", 60)]

    logging_api.clear_failures()
    with time_machine.travel(timezone.now() + timedelta(seconds=95), tick=False):
        third = ledger_export_send(writer=writer)
    assert third[0].outcome == "exported"
    assert _stored_sequences(logging_api) == [e.sequence for e in events]
    cursor = _cursor()
    assert (cursor.exported_sequence, cursor.failures, cursor.last_error) == (4, 0, "")


def test_export_after_a_worker_died_mid_write_deduplicates_on_insert_id(logging_api):
    """A worker killed after Cloud Logging stored the batch but before the cursor moved
    leaves the cursor `sending`; after the lease the batch is written again and Cloud
    Logging keeps one copy of each event (same insertId and timestamp)."""
    events = _append(3)

    class DiesAfterWriting(CloudLoggingWriter):
        def entries_write(self, entries):
            super().entries_write(entries)
            raise SystemExit("worker killed")

    with pytest.raises(SystemExit):
        ledger_export_send(writer=DiesAfterWriting(project=PROJECT, api_endpoint=logging_api.url))
    assert _cursor().state == ExportState.SENDING
    writer = CloudLoggingWriter(project=PROJECT, api_endpoint=logging_api.url)
    assert ledger_export_send(writer=writer)[0].outcome == "leased"

    with time_machine.travel(timezone.now() + EXPORT_LEASE + timedelta(seconds=1), tick=False):
        results = ledger_export_send(writer=writer)

    assert results[0].outcome == "exported"
    assert len(logging_api.writes()) == 2  # the same batch sent twice...
    assert _stored_sequences(logging_api) == [e.sequence for e in events]  # ...stored once
    assert _cursor().exported_sequence == 3


def test_export_refused_permission_waits_for_a_person_and_loses_nothing(logging_api, writer):
    _append(2)
    logging_api.fail(403)

    result = ledger_export_send(writer=writer)[0]

    assert result.outcome == "retry"
    assert _cursor().last_error.startswith("needs a person: entries:write: 403")
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        assert ledger_export_send(writer=writer)[0].outcome == "exported"
    assert _stored_sequences(logging_api) == [1, 2]


def test_export_refuses_a_batch_that_does_not_continue_the_chain(logging_api, writer):
    _append(2)
    ledger_export_send(writer=writer)
    _append(1)
    # The cursor remembers another hash than the next event's prev_hash: the ledger
    # was changed under the export (here, the cursor's record of it).
    AuditExport.objects.filter(destination=CLOUD_LOGGING).update(exported_hash="f" * 64)

    result = ledger_export_send(writer=writer)[0]

    assert result.outcome == "retry"
    assert "does not follow" in _cursor().last_error
    assert _stored_sequences(logging_api) == [1, 2]  # nothing after the break is sent


def test_export_stalled_and_resumed_are_audited(logging_api, writer):
    _append(1)
    logging_api.fail(503, times=None)
    moment = timezone.now()
    for _ in range(EXPORT_STALLED_AFTER):
        with time_machine.travel(moment, tick=False):
            assert ledger_export_send(writer=writer)[0].outcome == "retry"
        moment = _cursor().next_attempt_at + timedelta(seconds=1)

    stalled = AuditEvent.objects.get(action="audit.export_stalled")
    assert (stalled.object_type, stalled.object_id) == ("audit_export", CLOUD_LOGGING)
    assert stalled.payload_record.data["failures"] == EXPORT_STALLED_AFTER

    logging_api.clear_failures()
    with time_machine.travel(moment, tick=False):
        results = ledger_export_send(writer=writer)
    resumed = AuditEvent.objects.get(action="audit.export_resumed")
    # The stalled and resumed events are exported like any other: the resumed one,
    # appended when the first batch was recorded, goes in the next batch.
    assert [(r.outcome, r.count) for r in results] == [
        ("exported", 2),
        ("exported", 1),
        ("up_to_date", 0),
    ]
    assert _stored_sequences(logging_api) == [1, stalled.sequence, resumed.sequence]


def test_export_is_off_without_a_project(settings, logging_api):
    settings.AUDIT_CLOUD_LOGGING_PROJECT = ""
    _append(1)

    assert ledger_export_send() == []
    assert export_ledger() == 0
    assert not AuditExport.objects.exists()
    assert logging_api.writes() == []


def test_export_task_uses_the_settings_endpoint(settings, logging_api):
    settings.AUDIT_CLOUD_LOGGING_PROJECT = PROJECT
    settings.CLOUD_LOGGING_API_ENDPOINT = logging_api.url
    _append(5)

    assert export_ledger() == 5
    assert export_ledger() == 0
    assert _stored_sequences(logging_api) == [1, 2, 3, 4, 5]


def test_export_status_command_shows_the_lag_and_fails_past_a_limit(settings, logging_api, writer):
    settings.AUDIT_CLOUD_LOGGING_PROJECT = PROJECT
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _append(3)
        ledger_export_send(writer=writer)
        _append(2)
    out = StringIO()

    with time_machine.travel(start + timedelta(seconds=600), tick=False):
        call_command("audit_export_status", stdout=out)
        assert f"to {LOG}" in out.getvalue()
        assert "exported up to: #3" in out.getvalue()
        assert "lag: 2 events, 600 s" in out.getvalue()
        with pytest.raises(CommandError, match="600 s behind"):
            call_command("audit_export_status", "--max-lag-seconds=300", stdout=StringIO())
        call_command("audit_export_status", "--max-lag-seconds=900", stdout=StringIO())


# --- signed checkpoints -----------------------------------------------------------------


def _checkpoint_after(count: int) -> AuditCheckpoint:
    _append(count)
    return audit_checkpoint_create()


def _stored_checkpoints(logging_api) -> list[dict]:
    return [e for e in logging_api.stored if e.get("labels", {}).get("kind") == "checkpoint"]


def test_checkpoint_export_writes_each_signed_checkpoint_once_as_its_exported_file(
    logging_api, writer
):
    """Each checkpoint becomes one entry: insertId from its tree size and root, its
    signing time as the entry's time, and the exported file's fields as jsonPayload,
    which verifies as a checkpoint file against the published keys."""
    first = _checkpoint_after(3)
    second = _checkpoint_after(2)

    results = checkpoint_export_send(writer=writer)

    assert [(r.outcome, r.count) for r in results] == [("exported", 2), ("up_to_date", 0)]
    write = logging_api.writes()[0].body
    assert (write["logName"], write["partialSuccess"]) == (LOG, False)
    entries = _stored_checkpoints(logging_api)
    assert [e["insertId"] for e in entries] == [
        f"checkpoint-3-{first.root_hash}",
        f"checkpoint-5-{second.root_hash}",
    ]
    entry = entries[1]
    assert entry["labels"] == {"kind": "checkpoint", "tree_size": "5"}
    assert entry["timestamp"].startswith(second.issued_at.strftime("%Y-%m-%dT%H:%M:%S"))
    payload = entry["jsonPayload"]
    assert payload["type"] == "audit-checkpoint"
    assert (payload["tree_size"], payload["root_hash"], payload["head_hash"]) == (
        5,
        second.root_hash,
        second.head_hash,
    )
    claims = checkpoint_document_verify(json.dumps(payload), public_jwks())
    assert (claims.tree_size, claims.root_hash) == (5, second.root_hash)
    cursor = AuditExport.objects.get(destination=CLOUD_LOGGING_CHECKPOINTS)
    assert (cursor.exported_sequence, cursor.exported_hash) == (5, second.root_hash)
    # The events' cursor is another one: no event was exported by this.
    assert not AuditExport.objects.filter(destination=CLOUD_LOGGING).exists()

    third = _checkpoint_after(1)
    assert [r.count for r in checkpoint_export_send(writer=writer)] == [1, 0]
    assert [e["jsonPayload"]["tree_size"] for e in _stored_checkpoints(logging_api)] == [3, 5, 6]
    assert _stored_checkpoints(logging_api)[-1]["insertId"] == f"checkpoint-6-{third.root_hash}"


def test_checkpoint_export_in_batches_keeps_the_order_of_sizes(logging_api, writer):
    """Three checkpoints with batches of two: two writes, in the order of their sizes."""
    for count in (1, 1, 1):
        _checkpoint_after(count)

    results = checkpoint_export_send(writer=writer, batch_size=2)

    assert [(r.outcome, r.count) for r in results] == [
        ("exported", 2),
        ("exported", 1),
        ("up_to_date", 0),
    ]
    assert [len(w.body["entries"]) for w in logging_api.writes()] == [2, 1]
    assert [e["jsonPayload"]["tree_size"] for e in _stored_checkpoints(logging_api)] == [1, 2, 3]


def test_checkpoint_export_through_an_outage_backs_off_then_writes_each_once(logging_api, writer):
    """During an outage nothing is lost: the cursor stays, the backoff grows, and once
    Cloud Logging answers every checkpoint is stored once, the events beside them."""
    _checkpoint_after(2)
    logging_api.fail(503, times=None)

    assert [(r.outcome, r.retry_in) for r in checkpoint_export_send(writer=writer)] == [
        ("retry", 30)
    ]
    assert ledger_export_send(writer=writer)[0].outcome == "retry"
    cursor = AuditExport.objects.get(destination=CLOUD_LOGGING_CHECKPOINTS)
    assert (cursor.exported_sequence, cursor.failures) == (0, 1)
    assert cursor.last_error.startswith("outage: entries:write: 503")
    calls = len(logging_api.writes())
    assert checkpoint_export_send(writer=writer)[0].outcome == "not_due"
    assert len(logging_api.writes()) == calls
    _checkpoint_after(1)  # signed during the outage

    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        assert checkpoint_export_send(writer=writer)[0].retry_in == 60
    logging_api.clear_failures()
    with time_machine.travel(timezone.now() + timedelta(seconds=95), tick=False):
        assert [r.count for r in checkpoint_export_send(writer=writer)] == [2, 0]
        assert [r.count for r in ledger_export_send(writer=writer)] == [3, 0]

    assert [e["jsonPayload"]["tree_size"] for e in _stored_checkpoints(logging_api)] == [2, 3]
    assert _stored_sequences(logging_api) == [1, 2, 3]
    cursor = AuditExport.objects.get(destination=CLOUD_LOGGING_CHECKPOINTS)
    assert (cursor.exported_sequence, cursor.failures, cursor.last_error) == (3, 0, "")


def test_checkpoint_export_after_a_worker_died_mid_write_stores_each_once(logging_api):
    """Written, then the worker killed before the cursor moved: after the lease the
    batch goes again and Cloud Logging keeps one entry per checkpoint (same insertId
    and timestamp)."""
    _checkpoint_after(2)

    class DiesAfterWriting(CloudLoggingWriter):
        def entries_write(self, entries):
            super().entries_write(entries)
            raise SystemExit("worker killed")

    with pytest.raises(SystemExit):
        checkpoint_export_send(
            writer=DiesAfterWriting(project=PROJECT, api_endpoint=logging_api.url)
        )
    writer = CloudLoggingWriter(project=PROJECT, api_endpoint=logging_api.url)
    assert checkpoint_export_send(writer=writer)[0].outcome == "leased"
    with time_machine.travel(timezone.now() + EXPORT_LEASE + timedelta(seconds=1), tick=False):
        assert checkpoint_export_send(writer=writer)[0].outcome == "exported"

    assert len(logging_api.writes()) == 2
    assert [e["jsonPayload"]["tree_size"] for e in _stored_checkpoints(logging_api)] == [2]


def test_export_task_writes_events_and_checkpoints(settings, logging_api):
    """The beat task sends the events, then the checkpoints, and counts both."""
    settings.AUDIT_CLOUD_LOGGING_PROJECT = PROJECT
    settings.CLOUD_LOGGING_API_ENDPOINT = logging_api.url
    _checkpoint_after(4)

    assert export_ledger() == 5
    assert export_ledger() == 0
    assert _stored_sequences(logging_api) == [1, 2, 3, 4]
    assert [e["jsonPayload"]["tree_size"] for e in _stored_checkpoints(logging_api)] == [4]


def test_export_status_command_shows_the_checkpoints_lag(settings, logging_api, writer):
    """The status command names the checkpoints not yet exported and fails past the
    limit for them as for events."""
    settings.AUDIT_CLOUD_LOGGING_PROJECT = PROJECT
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _checkpoint_after(2)
        ledger_export_send(writer=writer)
    out = StringIO()

    with time_machine.travel(start + timedelta(seconds=600), tick=False):
        call_command("audit_export_status", stdout=out)
        assert "checkpoints: latest at 2 events, exported up to 0 events" in out.getvalue()
        assert "checkpoints lag: 1 checkpoints, 600 s" in out.getvalue()
        with pytest.raises(CommandError, match="checkpoint export is 600 s behind"):
            call_command("audit_export_status", "--max-lag-seconds=300", stdout=StringIO())
        checkpoint_export_send(writer=writer)
        call_command("audit_export_status", "--max-lag-seconds=300", stdout=StringIO())

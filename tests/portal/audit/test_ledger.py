"""The audit ledger: append-only, hash-chained, verifiable, redactable payloads."""

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction
from django.db.utils import DatabaseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.audit.actors import Actor
from portal.audit.hashing import payload_digest
from portal.audit.models import (
    GENESIS_HASH,
    REDACTION_ACTION,
    AuditChainHead,
    AuditEvent,
    AuditPayload,
)
from portal.audit.services import audit_checkpoint_create, audit_payloads_redact, audit_record
from portal.audit.verification import audit_chain_verify

SYSTEM = Actor.system("test")


def _record(n: int, **kwargs: object) -> list[AuditEvent]:
    return [
        audit_record(
            action="test.happened", actor=SYSTEM, object_type="thing", object_id=i, **kwargs
        )
        for i in range(n)
    ]


@pytest.mark.django_db
def test_audit_record_appends_a_chained_event():
    first, second = _record(2, payload={"n": 1})
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert len(second.hash) == 64
    assert AuditPayload.objects.get(event=second).data == {"n": 1}


@pytest.mark.django_db
def test_audit_record_rolls_back_with_the_change_it_records():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="test.rolled_back", actor=SYSTEM)
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.filter(action="test.rolled_back").exists()
    assert audit_chain_verify().ok


@pytest.mark.django_db
def test_audit_verify_passes_on_an_intact_chain(capsys):
    _record(5, payload={"ok": True}, client_ip="10.0.0.1")
    call_command("audit_verify")
    assert "audit chain intact: 5 events checked" in capsys.readouterr().out


def _tamper(*statements: tuple[str, list]) -> None:
    """Run raw SQL the way someone with direct database access would.

    On PostgreSQL that needs the superuser switch that turns the ledger's triggers off.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.mark.django_db
def test_audit_verify_names_a_missing_event():
    events = _record(3)
    _tamper(
        ("DELETE FROM audit_auditpayload WHERE event_id = %s", [events[1].pk]),
        ("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk]),
    )
    report = audit_chain_verify()
    assert not report.ok
    assert report.broken_sequence == 2
    assert "missing" in report.reason


@pytest.mark.django_db
def test_audit_verify_detects_an_edited_payload():
    events = _record(3, payload={"role": "auditor"})
    _tamper(
        (
            "UPDATE audit_auditpayload SET data = %s WHERE event_id = %s",
            ['{"role": "portal_admin"}', events[1].pk],
        )
    )
    with pytest.raises(CommandError, match=r"broken at event #2: its payload does not match"):
        call_command("audit_verify")


@pytest.mark.django_db
def test_redacted_payload_reads_as_redacted_not_broken():
    _record(2, payload={"subject": "pseudonym-1"}, client_ip="192.0.2.10")
    result = audit_payloads_redact(
        object_type="thing", object_id="1", reason="GDPR erasure", actor=SYSTEM
    )
    assert result.redacted == 1
    payload = AuditPayload.objects.get(event__object_id="1", event__action="test.happened")
    assert payload.data == {"redacted": True}
    assert payload.client_ip is None
    report = audit_chain_verify()
    assert report.ok
    assert report.redacted == 1
    redaction = AuditEvent.objects.get(action="audit.payloads_redacted")
    redacted_event = AuditEvent.objects.get(object_id="1", action="test.happened")
    assert redaction.payload_record.data["events"] == [
        {"sequence": redacted_event.sequence, "payload_digest": redacted_event.payload_digest}
    ]


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'forged' WHERE sequence = 1",
        "DELETE FROM audit_auditevent WHERE sequence = 1",
        "TRUNCATE audit_auditevent CASCADE",
        "DELETE FROM audit_auditpayload",
        "UPDATE audit_auditpayload SET data = '{}'",
        # a "redaction" that writes anything but the marker
        "UPDATE audit_auditpayload SET data = '{\"x\": 2}', redacted_at = now()",
        "UPDATE audit_auditpayload SET data = '{\"redacted\": true}', redacted_at = now(), "
        "client_ip = '192.0.2.1'",
    ],
)
def test_postgres_triggers_refuse_rewriting_the_ledger(statement):
    _record(1, payload={"x": 1})
    with (
        pytest.raises(DatabaseError, match="audit"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AuditEvent.objects.get(sequence=1).action == "test.happened"


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_orm_update_of_an_event_is_refused_too():
    (event,) = _record(1)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor_id", "someone-else"),
        ("actor_type", "user"),
        ("action", "test.forged"),
        ("object_type", "other"),
        ("object_id", "99"),
        ("payload_digest", "f" * 64),
        ("occurred_at", "2020-01-01 00:00:00"),
    ],
)
def test_audit_verify_detects_a_row_edited_with_triggers_bypassed(column, value):
    """An edited event field breaks its hash, on PostgreSQL (a superuser switching the
    triggers off) and on SQLite (no triggers): only the hash check catches it, since the
    next event's prev_hash still matches the stored hash."""
    _record(4)
    _tamper((f"UPDATE audit_auditevent SET {column} = %s WHERE sequence = 3", [value]))
    with pytest.raises(CommandError, match=r"broken at event #3: its fields do not match its hash"):
        call_command("audit_verify")


@pytest.mark.django_db
def test_audit_verify_detects_a_payload_row_deleted_with_triggers_bypassed():
    """An event whose payload row is gone (deleted by someone who can switch the
    triggers off) is named: the walk reads the payload through an outer join."""
    _record(4)
    _tamper(("DELETE FROM audit_auditpayload WHERE event_id = "
             "(SELECT id FROM audit_auditevent WHERE sequence = 2)", []))  # fmt: skip
    with pytest.raises(CommandError, match=r"broken at event #2: its payload is missing"):
        call_command("audit_verify")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_from_threads_form_one_unbroken_chain():
    threads_count, per_thread = 6, 15
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with transaction.atomic():
                    audit_record(
                        action="test.concurrent", actor=Actor.system(f"t{worker}"), object_id=i
                    )
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert AuditEvent.objects.count() == threads_count * per_thread
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, threads_count * per_thread + 1))
    report = audit_chain_verify()
    assert report.ok, report.summary()


# --- what is hashed is what is stored ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [-0.0, 1e300, 1e16, -1.5e20, 5e-324, 2.0, 10**300, "nul\x00byte", "lone \ud800 surrogate"],
)
def test_audit_verify_holds_for_values_the_database_rewrites(value):
    """-0.0 reads back from jsonb as 0.0, 1e300 as an exact integer, NUL and lone
    surrogates cannot be stored at all: the digest is over the stored form, so
    verification does not raise a false tamper alarm."""
    audit_record(action="test.numbers", actor=SYSTEM, payload={"value": value, "in": [value]})
    assert audit_chain_verify().ok, audit_chain_verify().summary()


_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json_values = st.recursive(
    _json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=st.dictionaries(st.text(max_size=8), _json_values, max_size=5))
def test_audit_verify_holds_for_any_json_payload_after_a_database_round_trip(payload):
    """Property: whatever JSON payload is recorded (negative zero, integral floats,
    big integers, any text), reading it back from the database gives what was hashed."""
    event = audit_record(action="test.any", actor=SYSTEM, payload=payload)
    stored = AuditPayload.objects.get(event=event)
    assert payload_digest(stored.data, stored.client_ip) == event.payload_digest
    report = audit_chain_verify()
    assert report.ok, report.summary()


# --- redactions must be provable --------------------------------------------------------


def _forge_redaction(event_pk: int, data: str = '{"redacted": true}') -> None:
    """What a role with table rights can do without any superuser switch."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditpayload SET data = %s, client_ip = NULL, "
            "redacted_at = CURRENT_TIMESTAMP, redaction_reason = 'GDPR' WHERE event_id = %s",
            [data, event_pk],
        )


@pytest.mark.django_db
def test_audit_verify_reports_a_forged_redaction_as_tampering():
    """The marker written straight into the table, with no redaction event naming the
    payload: the trigger lets the marker through, verification refuses it."""
    events = _record(3, payload={"role": "auditor"})
    _forge_redaction(events[1].pk)
    report = audit_chain_verify()
    assert not report.ok
    assert report.broken_sequence == 2
    assert "no redaction event names it" in report.reason
    with pytest.raises(CommandError, match=r"broken at event #2"):
        call_command("audit_verify")


@pytest.mark.django_db
def test_audit_verify_reports_a_redaction_marker_with_other_data_as_tampering():
    """Without triggers (SQLite, or a superuser), a payload marked redacted that holds
    anything but the marker is tampering."""
    events = _record(2, payload={"role": "auditor"})
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "UPDATE audit_auditpayload SET data = %s, redacted_at = CURRENT_TIMESTAMP "
            "WHERE event_id = %s",
            ['{"role": "portal_admin"}', events[0].pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")
    report = audit_chain_verify()
    assert (report.ok, report.broken_sequence) == (False, 1)
    assert "marked redacted but holds data" in report.reason


@pytest.mark.django_db
def test_audit_verify_reports_a_redaction_event_naming_an_unredacted_payload():
    """A redaction event that claims an event it did not redact does not hold."""
    (event,) = _record(1, payload={"x": 1})
    audit_record(
        action=REDACTION_ACTION,
        actor=SYSTEM,
        object_type="thing",
        object_id="0",
        payload={"count": 1, "reason": "x", "events": [{"sequence": 1, "payload_digest": "0"}]},
    )
    report = audit_chain_verify()
    assert (report.ok, report.broken_sequence) == (False, 2)
    assert event.sequence == 1


@pytest.mark.django_db
def test_redacting_an_object_twice_keeps_the_first_redaction_event_as_proof():
    """A second erasure of the same object redacts its new events, not the earlier
    redaction event that vouches for the first ones."""
    _record(1, payload={"subject": "p-1"})
    audit_payloads_redact(object_type="thing", object_id="0", reason="GDPR", actor=SYSTEM)
    _record(1, payload={"subject": "p-1 again"})
    second = audit_payloads_redact(object_type="thing", object_id="0", reason="GDPR", actor=SYSTEM)
    assert second.redacted == 1
    first_redaction = AuditEvent.objects.filter(action=REDACTION_ACTION).order_by("sequence")[0]
    assert first_redaction.payload_record.redacted_at is None
    report = audit_chain_verify()
    assert report.ok, report.summary()
    assert report.redacted == 2


@pytest.mark.django_db
def test_redaction_event_without_event_names_vouches_for_its_object_only():
    """Redaction events written before they named events carry a count: they vouch for
    that many earlier redacted payloads of their own object, and no others."""
    events = _record(2, payload={"subject": "p"})
    for event in events:
        _forge_redaction(event.pk)
    audit_record(
        action=REDACTION_ACTION,
        actor=SYSTEM,
        object_type="thing",
        object_id="0",
        payload={"count": 1, "reason": "GDPR erasure"},
    )
    report = audit_chain_verify()
    assert (report.ok, report.broken_sequence) == (False, 2)  # thing/1 has no redaction


@pytest.mark.django_db
def test_audit_verify_detects_tail_truncation_with_a_rewritten_chain_head():
    """The last event removed and the head row set to the one before it: nothing left
    in the ledger's own rows disagrees, but the checkpoint signed before it does."""
    events = _record(3)
    audit_checkpoint_create()
    _tamper(
        ("DELETE FROM audit_auditpayload WHERE event_id = %s", [events[2].pk]),
        ("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk]),
        (
            f"UPDATE {AuditChainHead._meta.db_table} SET sequence = %s, hash = %s WHERE id = 1",
            [events[1].sequence, events[1].hash],
        ),
    )
    report = audit_chain_verify()
    assert not report.ok
    assert report.broken_sequence == 3
    assert "the newest events were removed" in report.reason

"""The audit ledger: append-only, hash-chained, verifiable, redactable payloads."""

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction
from django.db.utils import DatabaseError

from portal.audit.actors import Actor
from portal.audit.models import GENESIS_HASH, AuditEvent, AuditPayload
from portal.audit.services import audit_payloads_redact, audit_record
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
    assert AuditEvent.objects.filter(action="audit.payloads_redacted").count() == 1


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


@pytest.mark.postgres
@pytest.mark.django_db
def test_audit_verify_detects_a_row_edited_with_triggers_bypassed():
    """A superuser can switch triggers off; the hash chain still shows the edit."""
    _record(4)
    _tamper(("UPDATE audit_auditevent SET actor_id = 'someone-else' WHERE sequence = 3", []))
    with pytest.raises(CommandError, match=r"broken at event #3: its fields do not match its hash"):
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

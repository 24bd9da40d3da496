"""Appending: audit_record's PostgreSQL statement and the ORM write the same rows, hashed
with the same bytes as the reference encoding, and an append costs the caller's
transaction two statements and no savepoint."""

import pytest
from django.db import DataError, transaction
from django.utils import timezone

from portal.audit.actors import Actor
from portal.audit.appending import NewEvent, chain_append_orm, chain_head_lock
from portal.audit.hashing import (
    EVENT_HASHED_FIELDS,
    canonical_json,
    event_hash,
    normalise_payload,
    payload_digest,
)
from portal.audit.models import AuditEvent, AuditPayload
from portal.audit.services import audit_record
from portal.audit.verification import audit_chain_verify

SYSTEM = Actor.system("test")

PAYLOADS = [
    ({}, None),
    ({"verdict": "approve", "role": "devops", "comment": 'é\n"quoted" 😀'}, "192.0.2.7"),
    ({"b": [1, 2.5, None, True], "a": {"z": 0.1, "é": -0.0, "😀": 10**30}}, "2001:db8::1"),
    ({"tiny": 1e-05, "least": 5e-324, "huge": 1e300, "big": 2**64}, None),
    ({"nul": "a\x00b", "lone": "x\ud800y", 7: "key not text"}, "198.51.100.3"),
]


def _append_orm_with_reference_hashing(payload: dict, client_ip: str | None) -> AuditEvent:
    """An event written the way audit_record wrote them before it had a PostgreSQL
    statement: the ORM's saves, the hash and digest from the reference encoders."""
    data = normalise_payload(payload)
    with transaction.atomic():
        head = chain_head_lock()
        fields = {
            "sequence": head.sequence + 1,
            "occurred_at": timezone.now(),
            "actor_type": str(SYSTEM.type),
            "actor_id": SYSTEM.id,
            "action": "test.orm",
            "object_type": "thing",
            "object_id": "1",
            "payload_digest": payload_digest(data, client_ip),
            "prev_hash": head.hash,
        }
        fields["hash"] = event_hash(**fields)
        new = NewEvent(
            fields=fields, data=data, data_json=canonical_json(data), client_ip=client_ip
        )
        return chain_append_orm(new)


@pytest.mark.django_db
def test_audit_record_hashes_with_the_reference_encoding_on_any_database():
    """Whatever the database, an appended event's hash and payload digest are the
    reference encoders' (event_hash, payload_digest) over the rows as read back."""
    for payload, client_ip in PAYLOADS:
        event = audit_record(
            action="test.any", actor=SYSTEM, object_id=3, payload=payload, client_ip=client_ip
        )
        stored = AuditEvent.objects.get(pk=event.pk)
        record = AuditPayload.objects.get(event=stored)
        assert payload_digest(record.data, record.client_ip) == stored.payload_digest
        fields = {name: getattr(stored, name) for name in EVENT_HASHED_FIELDS}
        assert event_hash(**fields) == stored.hash == event.hash
        assert (event.sequence, event.prev_hash, event.occurred_at) == (
            stored.sequence,
            stored.prev_hash,
            stored.occurred_at,
        )
    assert audit_chain_verify().ok


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_statement_and_orm_appends_interleave_into_one_verified_chain():
    """Events written by the PostgreSQL statement (audit_record) and by the ORM with the
    reference encoders alternate on one chain; each links to the one before, the
    payload rows read back alike, and verification holds."""
    pairs = []
    for payload, client_ip in PAYLOADS:
        by_orm = _append_orm_with_reference_hashing(payload, client_ip)
        by_sql = audit_record(action="test.sql", actor=SYSTEM, payload=payload, client_ip=client_ip)
        pairs.append((by_orm, by_sql))

    previous = None
    for by_orm, by_sql in pairs:
        assert by_sql.prev_hash == by_orm.hash
        assert previous is None or by_orm.prev_hash == previous.hash
        assert by_orm.payload_digest == by_sql.payload_digest
        orm_row = AuditPayload.objects.get(event_id=by_orm.pk)
        sql_row = AuditPayload.objects.get(event_id=by_sql.pk)
        assert (sql_row.data, sql_row.client_ip, sql_row.redacted_at, sql_row.redaction_reason) == (
            orm_row.data,
            orm_row.client_ip,
            None,
            "",
        )
        previous = by_sql
    report = audit_chain_verify()
    assert report.ok, report.summary()
    assert report.checked == 2 * len(PAYLOADS)


@pytest.mark.postgres
@pytest.mark.django_db
def test_audit_record_costs_two_statements_and_no_savepoint(django_assert_num_queries):
    """Inside the caller's transaction an append is the head's lock and one statement
    writing event, payload and head: no savepoint, no model saves."""
    audit_record(action="test.first", actor=SYSTEM)  # the head row exists
    with transaction.atomic(), django_assert_num_queries(2) as captured:
        audit_record(action="test.second", actor=SYSTEM, payload={"n": 1})
    sql = [query["sql"] for query in captured.captured_queries]
    assert sql[0].rstrip().endswith("FOR UPDATE")
    assert "SAVEPOINT" not in " ".join(sql)
    assert audit_chain_verify().ok


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_failed_append_fails_the_callers_transaction():
    """No savepoint: an append that fails (here an action longer than its column, which
    PostgreSQL refuses) rolls back the caller's whole change, never just the record."""
    audit_record(action="test.before", actor=SYSTEM)
    with pytest.raises(DataError), transaction.atomic():
        audit_record(action="test.kept?", actor=SYSTEM)
        audit_record(action="x" * 65, actor=SYSTEM)
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["test.before"]
    assert audit_chain_verify().ok


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2001:DB8:0::1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("192.0.2.1", "192.0.2.1"),
        ("", None),
    ],
)
def test_a_client_ip_is_hashed_as_the_column_keeps_it(given, stored):
    """An IPv6 address in upper case or uncompressed is kept compressed in lower case;
    the digest is over that form, so the event verifies rather than reading as an
    edited payload."""
    event = audit_record(action="test.ip", actor=SYSTEM, client_ip=given)
    record = AuditPayload.objects.get(event_id=event.pk)
    assert record.client_ip == stored
    assert payload_digest(record.data, record.client_ip) == event.payload_digest
    report = audit_chain_verify()
    assert report.ok, report.summary()

"""The fast walk of audit_chain_verify: the bytes it hashes are the reference encoding's,
and tampering is caught wherever it falls relative to the walk's fetch chunks."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import time_machine
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.audit.actors import Actor
from portal.audit.hashing import (
    _payload_bytes_fast,
    canonical_json,
    canonical_payload_json,
    event_body,
    event_hash_body,
    normalise_payload,
    occurred_at_text,
    payload_digest,
    payload_digest_matches,
)
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.audit.verification import audit_chain_verify

SYSTEM = Actor.system("test")

TRICKY_TEXT = [
    "",
    "plain",
    'quote " and back\\slash',
    "tab\tnew\nline\rcr\x08bs\x0cff",
    "control \x01\x1f and DEL \x7f",
    "line sep \u2028 para sep \u2029",
    "é ß 中文 😀",
    "\ufffd",
]


def _tamper(*statements: tuple[str, list]) -> None:
    """Raw SQL as someone with direct database access (the ledger's triggers off)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")


# --- the bytes are the reference encoding's ---------------------------------------------


@pytest.mark.parametrize("text", TRICKY_TEXT)
@pytest.mark.parametrize(
    "occurred_at",
    [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # microsecond 0, the clocks going forward
        datetime(50, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a year of fewer than four digits
        datetime(2026, 6, 1, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-7))),
    ],
)
def test_event_body_is_the_reference_encoding_for_tricky_text_and_times(text, occurred_at):
    """Every string column goes through json's own encoder, the time through the same
    formatting, so the fast body is byte for byte canonical_json of event_hash's dict."""
    fields = {
        "sequence": 2**40 + 7,
        "actor_type": text,
        "actor_id": text + "1",
        "action": text + "2",
        "object_type": text + "3",
        "object_id": text + "4",
        "payload_digest": text + "5",
        "prev_hash": text + "6",
    }
    fast = event_body(
        fields["sequence"],
        occurred_at_text(occurred_at),
        fields["actor_type"],
        fields["actor_id"],
        fields["action"],
        fields["object_type"],
        fields["object_id"],
        fields["payload_digest"],
        fields["prev_hash"],
    )
    assert fast == event_hash_body(occurred_at=occurred_at, **fields)


TRICKY_PAYLOADS = [
    {"verdict": "approve", "role": "devops"},
    {"b": 1, "a": {"é": 1, "e": 2, "Z": 3, "😀": [True, False, None]}},  # key order
    {"small": 1e-05, "tiny": 1.5e-07, "least": 5e-324},  # orjson writes these differently
    {"floats": [0.1, 0.30000000000000004, 2.5, 123456789012345.6, 1.7976931348623157e308]},
    {"ints": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, 10**30, -(10**30)]},
    {"text": TRICKY_TEXT},
    {"nested": [[[{"deep": [{"deeper": "x"}]}]]], "empty": [{}, [], ""]},
]


@pytest.mark.parametrize("payload", TRICKY_PAYLOADS)
@pytest.mark.parametrize("client_ip", [None, "192.0.2.10", "2001:db8::1"])
def test_payload_digest_matches_agrees_with_the_reference_on_tricky_values(payload, client_ip):
    """Floats orjson writes differently and integers beyond 64 bits still verify (the
    reference path decides), and a digest of anything else is refused."""
    for text in (json.dumps(payload), json.dumps(payload, ensure_ascii=False, indent=1)):
        digest = payload_digest(json.loads(text), client_ip)
        assert payload_digest_matches(text, client_ip, digest)
        assert not payload_digest_matches(text, client_ip, payload_digest({}, client_ip))
        assert not payload_digest_matches(text, "198.51.100.1", digest)


def test_payload_digest_matches_refuses_a_big_integer_standing_in_for_a_float():
    """orjson reads 2**64 as the float 1.8446744073709552e+19; a payload whose digest was
    over that float must not verify when the column holds the integer (json.loads keeps
    the integer, so the reference says the payload changed)."""
    digest = payload_digest({"n": 1.8446744073709552e19}, None)
    assert not payload_digest_matches('{"n": 18446744073709551616}', None, digest)
    assert payload_digest_matches('{"n": 1.8446744073709552e19}', None, digest)


_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12).filter(lambda text: "\x00" not in text)
)
_json_values = st.recursive(
    _json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), _json_values, max_size=5))
def test_payload_digest_matches_holds_for_any_json_and_refuses_any_change(payload):
    """Property: the digest json.loads' reading gives is accepted, and the digest of
    the payload with one more key is not."""
    try:
        text = json.dumps(payload, ensure_ascii=False)
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: no column can hold it
        return
    digest = payload_digest(json.loads(text), None)
    assert payload_digest_matches(text, None, digest)
    changed = {**json.loads(text), "\x01extra": 0}
    assert not payload_digest_matches(text, None, payload_digest(changed, None))


def test_payload_canonical_bytes_are_the_reference_for_plain_payloads():
    """For the usual payload (no tiny floats, no huge integers) the orjson bytes are the
    reference bytes themselves, so the walk never needs the reference path."""
    for payload in TRICKY_PAYLOADS[:2] + TRICKY_PAYLOADS[5:]:
        text = json.dumps(payload)
        expected = canonical_json({"data": json.loads(text), "client_ip": "192.0.2.10"})
        assert _payload_bytes_fast(text, "192.0.2.10") == expected


@pytest.mark.parametrize("payload", TRICKY_PAYLOADS)
def test_canonical_payload_json_is_the_reference_encoding(payload):
    """The bytes an append hashes and stores are canonical_json's for every tricky
    payload: orjson's where it writes the same, the reference's for tiny floats and
    integers beyond 64 bits."""
    data = normalise_payload(payload)
    assert canonical_payload_json(data) == canonical_json(data)


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), _json_values, max_size=5))
def test_canonical_payload_json_is_the_reference_encoding_for_any_json(payload):
    """Property: for any payload in its stored form, the append's bytes are the
    reference bytes."""
    try:
        data = normalise_payload(payload)
    except ValueError:  # a float the stored form cannot hold
        return
    assert canonical_payload_json(data) == canonical_json(data)


# --- the walk, across its fetch chunks --------------------------------------------------

CHUNK = 4  # twelve events: chunks 1-4, 5-8, 9-12


@pytest.fixture
def ledger() -> dict[int, AuditEvent]:
    events = [
        audit_record(
            action="test.happened",
            actor=SYSTEM,
            object_type="thing",
            object_id=n,
            payload={"n": n, "text": "é\n", "f": 0.5},
            client_ip="192.0.2.1" if n % 2 else None,
        )
        for n in range(1, 13)
    ]
    assert audit_chain_verify(chunk_size=CHUNK).ok
    return {event.sequence: event for event in events}


# The first and last event of each chunk.
BOUNDARIES = [1, 4, 5, 8, 9, 12]


@pytest.mark.django_db
@pytest.mark.parametrize("sequence", BOUNDARIES)
def test_audit_verify_catches_an_edited_payload_at_a_chunk_boundary(ledger, sequence):
    _tamper(
        (
            "UPDATE audit_auditpayload SET data = %s WHERE event_id = %s",
            ['{"n": 0, "text": "é\\n", "f": 0.5}', ledger[sequence].pk],
        )
    )
    report = audit_chain_verify(chunk_size=CHUNK)
    assert (report.ok, report.broken_sequence) == (False, sequence)
    assert report.reason == "its payload does not match the digest in the chain"


@pytest.mark.django_db
@pytest.mark.parametrize("sequence", BOUNDARIES)
def test_audit_verify_catches_an_edited_hash_at_a_chunk_boundary(ledger, sequence):
    _tamper(("UPDATE audit_auditevent SET hash = %s WHERE sequence = %s", ["f" * 64, sequence]))
    report = audit_chain_verify(chunk_size=CHUNK)
    assert (report.ok, report.broken_sequence) == (False, sequence)
    assert report.reason == "its fields do not match its hash"
    assert report.checked == sequence - 1


@pytest.mark.django_db
@pytest.mark.parametrize("sequence", [4, 5, 8, 9])
def test_audit_verify_catches_a_deleted_row_at_a_chunk_boundary(ledger, sequence):
    """The chunk then starts or ends one event later: the gap is still seen."""
    _tamper(
        ("DELETE FROM audit_auditpayload WHERE event_id = %s", [ledger[sequence].pk]),
        ("DELETE FROM audit_auditevent WHERE id = %s", [ledger[sequence].pk]),
    )
    report = audit_chain_verify(chunk_size=CHUNK)
    assert (report.ok, report.broken_sequence) == (False, sequence)
    assert report.reason == f"event #{sequence} is missing"


@pytest.mark.django_db
@pytest.mark.parametrize("sequence", [4, 8, 5])
def test_audit_verify_catches_two_events_swapped_across_or_inside_a_chunk(ledger, sequence):
    """Events #s and #s+1 trade sequence numbers (4/5 and 8/9 straddle a chunk
    boundary): the one now at #s does not follow the event before it."""
    _tamper(
        ("UPDATE audit_auditevent SET sequence = 1000 WHERE sequence = %s", [sequence]),
        (
            "UPDATE audit_auditevent SET sequence = %s WHERE sequence = %s",
            [sequence, sequence + 1],
        ),
        ("UPDATE audit_auditevent SET sequence = %s WHERE sequence = 1000", [sequence + 1]),
    )
    report = audit_chain_verify(chunk_size=CHUNK)
    assert (report.ok, report.broken_sequence) == (False, sequence)
    assert report.reason == "previous hash does not match the event before it"


@pytest.mark.django_db
def test_audit_verify_catches_a_payload_row_deleted_at_the_end_of_a_chunk(ledger):
    _tamper(("DELETE FROM audit_auditpayload WHERE event_id = %s", [ledger[8].pk]))
    report = audit_chain_verify(chunk_size=CHUNK)
    assert (report.ok, report.broken_sequence, report.reason) == (
        False,
        8,
        "its payload is missing",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("chunk_size", [1, 3, 12, 5000])
def test_audit_verify_gives_the_same_report_whatever_the_chunk_size(ledger, chunk_size):
    report = audit_chain_verify(chunk_size=chunk_size)
    assert report.ok
    assert (report.checked, report.head_hash) == (12, ledger[12].hash)


@pytest.mark.django_db
def test_audit_verify_holds_for_events_at_whole_seconds_and_clock_changes():
    """The walk formats the event time itself (PostgreSQL's to_char): a time with no
    microseconds and one at the hour the clocks change must hash as Python formats them."""
    for moment in ("2026-03-29 01:00:00+00:00", "2026-10-25 01:59:59.000001+00:00"):
        with time_machine.travel(datetime.fromisoformat(moment), tick=False):
            audit_record(action="test.timed", actor=SYSTEM, payload={"at": moment})
    report = audit_chain_verify()
    assert report.ok, report.summary()


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    "occurred_at",
    [
        # the same date printed as year 50 if the era were dropped
        "0050-01-02 03:04:05.000006+00 BC",
        # later than any Python datetime
        "12026-01-02 03:04:05+00",
    ],
)
def test_audit_verify_reports_a_time_no_event_can_have_as_tampering(ledger, occurred_at):
    """A time Python cannot hold is a broken hash, not a crash or a pass."""
    _tamper(("UPDATE audit_auditevent SET occurred_at = %s WHERE sequence = 5", [occurred_at]))
    report = audit_chain_verify(chunk_size=CHUNK)
    assert (report.ok, report.broken_sequence) == (False, 5)
    assert report.reason == "its fields do not match its hash"


@pytest.mark.postgres
@pytest.mark.django_db
def test_audit_verify_reads_the_hash_over_what_the_event_time_was():
    """A BC time whose digits equal a real event's (year 50 AD) must not pass for it."""
    with time_machine.travel(datetime(50, 1, 2, 3, 4, 5, 6, tzinfo=UTC), tick=False):
        event = audit_record(action="test.ancient", actor=SYSTEM)
    assert audit_chain_verify().ok
    _tamper(
        (
            "UPDATE audit_auditevent SET occurred_at = %s WHERE id = %s",
            ["0050-01-02 03:04:05.000006+00 BC", event.pk],
        )
    )
    report = audit_chain_verify()
    assert (report.ok, report.broken_sequence) == (False, event.sequence)
    assert report.reason == "its fields do not match its hash"

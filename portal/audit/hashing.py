"""The canonical encoding the chain hashes. Changing it breaks every existing chain."""

import hashlib
import json
from datetime import UTC, datetime
from json.encoder import encode_basestring as _json_string
from typing import Any

import orjson

from portal.jsonvalues import json_stored_form

# The fields an event's chain hash covers, in the order event_hash_body takes them.
EVENT_HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "payload_digest",
    "prev_hash",
)
# An event's own columns: those, then the hash over them (the appender writes them in
# this order, the verifier reads them in this order).
EVENT_COLUMNS = (*EVENT_HASHED_FIELDS, "hash")


def normalise_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload exactly as it will read back from the JSON column, on PostgreSQL and
    SQLite alike (portal.jsonvalues): the digest is computed over what is stored."""
    return json_stored_form(payload or {})


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload_digest(data: dict[str, Any], client_ip: str | None) -> str:
    return hashlib.sha256(canonical_json({"data": data, "client_ip": client_ip})).hexdigest()


def event_hash_body(
    *,
    sequence: int,
    occurred_at: datetime,
    actor_type: str,
    actor_id: str,
    action: str,
    object_type: str,
    object_id: str,
    payload_digest: str,
    prev_hash: str,
) -> bytes:
    """The canonical bytes an event's chain hash is SHA-256 over."""
    body = {
        "sequence": sequence,
        "occurred_at": occurred_at_text(occurred_at),
        "actor": [str(actor_type), actor_id],
        "action": action,
        "object": [object_type, object_id],
        "payload_digest": payload_digest,
        "prev_hash": prev_hash,
    }
    return canonical_json(body)


def event_hash(
    *,
    sequence: int,
    occurred_at: datetime,
    actor_type: str,
    actor_id: str,
    action: str,
    object_type: str,
    object_id: str,
    payload_digest: str,
    prev_hash: str,
) -> str:
    """The event's chain hash: hex SHA-256 of event_hash_body."""
    return hashlib.sha256(
        event_hash_body(
            sequence=sequence,
            occurred_at=occurred_at,
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            payload_digest=payload_digest,
            prev_hash=prev_hash,
        )
    ).hexdigest()


# --- the same bytes, faster, for walking a whole ledger ---------------------------------
#
# `audit_chain_verify` recomputes every event's hash and payload digest; building a dict
# and running json.dumps per event cost most of the walk. These produce the same bytes
# from the columns as fetched: `event_body` by construction (json's own string encoder,
# the keys already in sorted order), `payload_digest_matches` through orjson, which
# writes a few values differently from json.dumps (floats below 1e-4: `0.00001` for
# `1e-05`), so a digest that does not match is recomputed the reference way before
# anything is called broken.

_EVENT_BODY = (
    '{"action":%s,"actor":[%s,%s],"object":[%s,%s],"occurred_at":%s,'
    '"payload_digest":%s,"prev_hash":%s,"sequence":%d}'
)
_ORJSON_SORTED = orjson.OPT_SORT_KEYS


def occurred_at_text(occurred_at: datetime) -> str:
    """The event time as the chain hashes it: UTC, ISO 8601, microseconds, `+00:00`."""
    return occurred_at.astimezone(UTC).isoformat(timespec="microseconds")


def event_body(
    sequence: int,
    occurred_at: str,
    actor_type: str,
    actor_id: str,
    action: str,
    object_type: str,
    object_id: str,
    payload_digest: str,
    prev_hash: str,
    /,
) -> bytes:
    """canonical_json of event_hash's body, given `occurred_at` already as
    occurred_at_text gives it; byte for byte the same (tests pin it on tricky text)."""
    return (
        _EVENT_BODY
        % (
            _json_string(action),
            _json_string(actor_type),
            _json_string(actor_id),
            _json_string(object_type),
            _json_string(object_id),
            _json_string(occurred_at),
            _json_string(payload_digest),
            _json_string(prev_hash),
            sequence,
        )
    ).encode()


def payload_body(data_json: bytes, client_ip: str | None) -> bytes:
    """canonical_json({"data": data, "client_ip": client_ip}) given `data_json`, the
    canonical bytes of `data` (canonical_json(data)): the keys sort as written here."""
    ip = b"null" if client_ip is None else _json_string(client_ip).encode()
    return b'{"client_ip":%s,"data":%s}' % (ip, data_json)


def _payload_bytes_fast(data_text: str, client_ip: str | None) -> bytes | None:
    """canonical_json({"data": ..., "client_ip": ...}) through orjson, or None when
    orjson cannot read the text or may have read a number differently from json.loads."""
    try:
        data = orjson.dumps(orjson.loads(data_text), option=_ORJSON_SORTED)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    # orjson reads an integer beyond 64 bits as a float, which it writes with `e+`;
    # json.loads keeps the integer. Such a payload (or text holding `e+`) takes the
    # reference path.
    if b"e+" in data:
        return None
    return payload_body(data, client_ip)


def _floats_written_alike(value: Any) -> bool:
    """Whether orjson writes every float in `value` as json.dumps does (repr)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and orjson.dumps(item) != float.__repr__(item).encode():
            return False
    return True


def canonical_payload_json(data: Any) -> bytes:
    """canonical_json(data) for a payload in its stored form (normalise_payload), through
    orjson where it writes the same bytes.

    orjson writes text, key order, integers up to 64 bits and the usual floats exactly
    as json.dumps does (tests pin it); it refuses larger integers and writes floats
    below 1e-4 without json's exponent (`0.00001` for `1e-05`), so a payload holding
    one of those is encoded the reference way.
    """
    try:
        fast = orjson.dumps(data, option=_ORJSON_SORTED)
    except orjson.JSONEncodeError:
        return canonical_json(data)
    return fast if _floats_written_alike(data) else canonical_json(data)


def payload_digest_matches(data_text: str, client_ip: str | None, digest: str) -> bool:
    """Whether the payload stored as `data_text` (the JSON column's text) with
    `client_ip` has `digest`, i.e. payload_digest(json.loads(data_text), client_ip).

    The orjson path is only trusted when it matches: orjson writes every value so that
    json.loads reads it back unchanged, so bytes with the stored digest can only be the
    canonical bytes of the very payload json.loads reads; on a mismatch the digest is
    recomputed the reference way, so a value orjson writes differently is no false alarm.
    """
    fast = _payload_bytes_fast(data_text, client_ip)
    if fast is not None and hashlib.sha256(fast).hexdigest() == digest:
        return True
    return payload_digest(json.loads(data_text), client_ip) == digest

"""The canonical encoding the chain hashes. Changing it breaks every existing chain."""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from portal.jsonvalues import json_stored_form


def normalise_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload exactly as it will read back from the JSON column, on PostgreSQL and
    SQLite alike (portal.jsonvalues): the digest is computed over what is stored."""
    return json_stored_form(payload or {})


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload_digest(data: dict[str, Any], client_ip: str | None) -> str:
    return hashlib.sha256(canonical_json({"data": data, "client_ip": client_ip})).hexdigest()


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
    body = {
        "sequence": sequence,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": [str(actor_type), actor_id],
        "action": action,
        "object": [object_type, object_id],
        "payload_digest": payload_digest,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()

"""The suppression list: people the training pipelines and the model server must leave
out, by a keyed hash of their customer id.

The portal writes it (one JSON file) whenever training takes a snapshot: people who
objected to profiling (GDPR Art. 21), asked for restriction (Art. 18) or erasure
(Art. 17), or withdrew their consent to profiling or personalisation. Its shape:

    {"format": 1, "written_at": "<ISO 8601>",
     "hash": {"algorithm": "hmac-sha256", "of": "customer_id", "key_id": "<16 hex>"},
     "purposes": {"training": [<hex>...], "profiling": [...], "personalisation": [...]}}

- `training`: rows of these customers are left out of the next training snapshot;
- `profiling`: the segmentation model answers with the default segment;
- `personalisation`: the recommendation model answers with non-personalised items.

The readers (plain Python, separate processes) hash the customer ids they meet and
compare, so they need the portal's hashing key. The file does not carry it: whoever
could read the file could otherwise test candidate ids against the list. The key is a
secret (`DSAR_SUPPRESSION_KEY`, hex) that each reader gets as it gets its other
secrets: from that variable, or from the file `DSAR_SUPPRESSION_KEY_FILE` names (a
mounted secret), or passed in by the portal for a run in its own process; a training
job on Vertex AI reads it from Secret Manager (`pipelines.vertex_steps`). The file
carries only the key's id (`key_id`, a one-way function of the key), so a reader with
the wrong key or none refuses the list (SuppressionListInvalid) instead of silently
leaving nobody out. A list written before the key was split out still carries `key`
and is read with it, until the portal next rewrites the file.
"""

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
TRAINING = "training"
PROFILING = "profiling"
PERSONALISATION = "personalisation"
PURPOSES = (TRAINING, PROFILING, PERSONALISATION)
# The column that names a customer in the lake's tables.
CUSTOMER_COLUMN = "customer_id"
# Where a reader finds the hashing key: the key (hex), or a file holding it.
KEY_VARIABLE = "DSAR_SUPPRESSION_KEY"
KEY_FILE_VARIABLE = "DSAR_SUPPRESSION_KEY_FILE"


class SuppressionListInvalid(ValueError):
    """The file is not a suppression list this code understands."""


def key_id(key: bytes) -> str:
    """The id of a hashing key (16 hex): names it in the file without revealing it."""
    return hmac.new(key, b"suppression list key id", hashlib.sha256).hexdigest()[:16]


def key_parse(text: str, *, source: str) -> bytes:
    """A key written as hex, at least 32 bytes; SuppressionListInvalid naming
    `source` otherwise."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise SuppressionListInvalid(f"{source}: the key must be hex") from None
    if len(key) < 32:
        raise SuppressionListInvalid(f"{source}: the key must be at least 32 bytes (64 hex)")
    return key


def suppression_key_from_environment() -> bytes | None:
    """The key from DSAR_SUPPRESSION_KEY, or from the file DSAR_SUPPRESSION_KEY_FILE
    names; None when neither is set. SuppressionListInvalid for a malformed key."""
    if os.environ.get(KEY_VARIABLE):
        return key_parse(os.environ[KEY_VARIABLE], source=KEY_VARIABLE)
    if os.environ.get(KEY_FILE_VARIABLE):
        path = Path(os.environ[KEY_FILE_VARIABLE])
        try:
            return key_parse(path.read_text(), source=KEY_FILE_VARIABLE)
        except OSError as error:
            raise SuppressionListInvalid(f"{KEY_FILE_VARIABLE}: {error}") from error
    return None


def customer_key(key: bytes, customer_id: object) -> str:
    """The keyed hash (HMAC-SHA256, hex) of one customer id, as the portal stores it."""
    return hmac.new(key, str(customer_id).encode(), hashlib.sha256).hexdigest()


_SHA256_BLOCK = 64  # bytes


def _hmac_sha256_each(key: bytes, values: list[str]) -> list[bytes]:
    """HMAC-SHA256 (raw 32 bytes) of each value (UTF-8), as `hmac.new(key, value,
    sha256).digest()` gives it (RFC 2104), for many values under one key.

    The key's inner and outer SHA-256 states are computed once and copied per value:
    two plain hash copies per id cost about half what `hmac`'s per-value objects do,
    which counts when a lake's worth of customer ids is hashed."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    block = key.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    macs = []
    for value in values:
        mac = inner.copy()
        mac.update(value.encode())
        result = outer.copy()
        result.update(mac.digest())
        macs.append(result.digest())
    return macs


@dataclass(frozen=True)
class SuppressionList:
    """Keys (hashed customer ids) per purpose, and the key that hashes them."""

    key: bytes = b""
    purposes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    written_at: str = ""

    def keys(self, purpose: str) -> frozenset[str]:
        return self.purposes.get(purpose, frozenset())

    def suppressed(self, customer_id: object, purpose: str) -> bool:
        """Whether this customer is left out of `purpose` (one of PURPOSES)."""
        keys = self.keys(purpose)
        return bool(keys) and customer_key(self.key, customer_id) in keys

    def suppressed_among(self, customer_ids: Iterable[object], purpose: str) -> set[str]:
        """The ids among `customer_ids` (as strings) left out of `purpose`."""
        keys = self.keys(purpose)
        if not keys:
            return set()
        # Compared as raw digests (no hex string per id). An entry that is not a
        # digest in lower-case hex matches nothing, as before.
        digests = set()
        for entry in keys:
            try:
                raw = bytes.fromhex(entry)
            except ValueError:
                continue
            if raw.hex() == entry:
                digests.add(raw)
        ids = [str(customer_id) for customer_id in customer_ids]
        macs = _hmac_sha256_each(self.key, ids)
        return {i for i, mac in zip(ids, macs, strict=True) if mac in digests}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "written_at": self.written_at,
            "hash": {"algorithm": "hmac-sha256", "of": CUSTOMER_COLUMN, "key_id": key_id(self.key)},
            "purposes": {p: sorted(self.keys(p)) for p in PURPOSES},
        }


EMPTY = SuppressionList()


def suppression_write(
    path: str | Path, *, key: bytes, purposes: Mapping[str, Iterable[str]], written_at: str
) -> SuppressionList:
    """Write the list to `path` atomically (a reader sees the old file or the new one).

    Side effects: creates `path` (and its folder), replacing the file there.
    """
    unknown = set(purposes) - set(PURPOSES)
    if unknown:
        raise SuppressionListInvalid(f"unknown purposes: {', '.join(sorted(unknown))}")
    found = SuppressionList(
        key=key,
        purposes={p: frozenset(purposes.get(p, ())) for p in PURPOSES},
        written_at=written_at,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    staging.write_text(json.dumps(found.to_dict(), indent=1))
    os.replace(staging, path)
    return found


def suppression_read(path: str | Path | None, *, key: bytes | None = None) -> SuppressionList:
    """The list in `path`; the empty list when no path is given or no file is there
    yet (nobody is suppressed). `key` is the hashing key (by default from the
    environment, `suppression_key_from_environment`). SuppressionListInvalid for a file
    of another shape, or a list with entries whose key is missing or not `key`."""
    if path is None or not Path(path).is_file():
        return EMPTY
    try:
        raw = json.loads(Path(path).read_text())
        if raw.get("format") != FORMAT or raw["hash"]["algorithm"] != "hmac-sha256":
            raise SuppressionListInvalid(f"{path}: not a format {FORMAT} suppression list")
        purposes = {p: frozenset(raw["purposes"].get(p, ())) for p in PURPOSES}
        if "key" in raw["hash"]:  # written before the key was split out of the file
            key = bytes.fromhex(raw["hash"]["key"])
        else:
            key = key if key is not None else suppression_key_from_environment()
            if key is None and any(purposes.values()):
                raise SuppressionListInvalid(
                    f"{path}: the list's hashing key is not given (set {KEY_VARIABLE} or "
                    f"{KEY_FILE_VARIABLE})"
                )
            if key is not None and key_id(key) != raw["hash"]["key_id"]:
                raise SuppressionListInvalid(
                    f"{path}: written with key {raw['hash']['key_id']}, not the key given "
                    f"({key_id(key)})"
                )
        return SuppressionList(
            key=key or b"", purposes=purposes, written_at=str(raw.get("written_at", ""))
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, SuppressionListInvalid):
            raise
        raise SuppressionListInvalid(f"{path}: {error}") from error

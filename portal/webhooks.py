"""Signatures on the webhooks the portal sends, so a receiver can tell they are ours.

The header is `X-Portal-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
HMAC-SHA256, keyed with the webhook's shared secret, over `b"<t>." + body`. Signing
the timestamp with the body lets a receiver refuse replays of old deliveries.
"""

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Portal-Signature"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}.".encode() + body` under `secret`."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The X-Portal-Signature value for `body`, signed now unless `timestamp` is given."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    return f"t={signed_at},{SIGNATURE_SCHEME}={webhook_signature(secret, signed_at, body)}"


def _header_parse(header: str) -> tuple[int, list[str]] | None:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if name == "t":
            if timestamp is not None or not value.isdigit():
                return None
            timestamp = int(value)
        elif name == SIGNATURE_SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def webhook_signature_verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: int | None = None,
) -> bool:
    """True when `header` holds a v1 signature of `body` under `secret`, made within
    `tolerance_seconds` of `now` (the current time by default), either side.

    Several v1 entries are accepted (one matching is enough), so a sender can sign with
    an old and a new secret while rotating. Comparison is constant-time.
    """
    if not header:
        return False
    parsed = _header_parse(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = webhook_signature(secret, timestamp, body).encode()
    # Bytes, because compare_digest refuses non-ASCII str; every candidate is compared,
    # so timing does not reveal which one matched.
    matches = [hmac.compare_digest(expected, candidate.encode()) for candidate in signatures]
    return any(matches)

"""Signed checkpoints of the ledger's Merkle tree: signing, the exported file, checking one.

A checkpoint says "the ledger had `tree_size` events, the Merkle root over their chain
hashes was `root_hash`, the last one's hash was `head_hash`", signed as a compact JWS
(typ `audit-checkpoint+jwt`) with the attestation keys, so anyone holding the JWKS
from /.well-known/jwks.json can check it without the portal. Checkpoints never expire:
the claims carry `iat` and no `exp`.

The exported file is JSON: the claims in readable form beside the `statement` that
signs them. Only the signed claims count; a file whose readable fields disagree with
its statement is refused.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from django.conf import settings

from portal.attestation import signing_keys
from portal.audit.merkle import leaf_hash
from portal.audit.models import AuditCheckpoint

CHECKPOINT_TYPE = "audit-checkpoint+jwt"
CHECKPOINT_FILE_TYPE = "audit-checkpoint"
_ALGORITHMS = ("EdDSA", "ES256", "RS256")
_CLAIMS = ("iss", "iat", "tree_size", "root_hash", "head_hash")


class CheckpointInvalid(Exception):
    """The checkpoint is not one the keys given signed, or is malformed; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckpointClaims:
    """What a checkpoint states, once its signature (or its row) is trusted."""

    tree_size: int
    root_hash: str
    head_hash: str
    issued_at: datetime
    issuer: str = ""
    key_id: str = ""

    def describe(self) -> str:
        return f"the checkpoint of {self.issued_at.isoformat(timespec='seconds')}"


def event_leaf(event_hash_hex: str) -> bytes:
    """The Merkle leaf of an event: its chain hash as 32 bytes, hashed as a leaf."""
    return leaf_hash(bytes.fromhex(event_hash_hex))


def checkpoint_statement_sign(*, tree_size: int, root_hash: str, head_hash: str) -> tuple[str, str]:
    """Sign the claims with the first attestation key; returns (JWS, key id)."""
    key = signing_keys()[0]
    now = datetime.now(tz=UTC)
    claims = {
        "iss": settings.PORTAL_BASE_URL,
        "iat": int(now.timestamp()),
        "tree_size": tree_size,
        "root_hash": root_hash,
        "head_hash": head_hash,
    }
    token = jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": CHECKPOINT_TYPE},
    )
    return token, key.kid


def checkpoint_statement_verify(token: str, jwks: dict[str, Any]) -> CheckpointClaims:
    """The claims of a checkpoint statement signed by a key of `jwks`; else CheckpointInvalid."""
    try:
        header = jwt.get_unverified_header(token)
        key_set = jwt.PyJWKSet.from_dict(jwks)
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise CheckpointInvalid(f"not a signed checkpoint: {exc}") from exc
    if header.get("typ") != CHECKPOINT_TYPE:
        raise CheckpointInvalid(f"typ header is {header.get('typ')!r}, not {CHECKPOINT_TYPE!r}")
    kid = header.get("kid")
    matching = [key for key in key_set.keys if kid and key.key_id == kid]
    if not matching:
        raise CheckpointInvalid(f"no published key has kid {kid!r}")
    key = matching[0]
    # The algorithm comes from the published key, never from the token's header.
    if key.algorithm_name not in _ALGORITHMS or header.get("alg") != key.algorithm_name:
        raise CheckpointInvalid(f"algorithm {header.get('alg')!r} does not match key {kid!r}")
    try:
        claims = jwt.decode(
            token, key.key, algorithms=[key.algorithm_name], options={"require": list(_CLAIMS)}
        )
    except jwt.PyJWTError as exc:
        raise CheckpointInvalid(f"signature or claims do not hold: {exc}") from exc
    return _claims_checked(claims, key_id=kid)


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _claims_checked(claims: dict[str, Any], *, key_id: str) -> CheckpointClaims:
    size = claims.get("tree_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise CheckpointInvalid("tree_size must be a whole number of at least 1")
    if not _is_hash(claims.get("root_hash")) or not _is_hash(claims.get("head_hash")):
        raise CheckpointInvalid("root_hash and head_hash must be 64 lower-case hex digits")
    return CheckpointClaims(
        tree_size=size,
        root_hash=claims["root_hash"],
        head_hash=claims["head_hash"],
        issued_at=datetime.fromtimestamp(claims["iat"], tz=UTC),
        issuer=str(claims.get("iss", "")),
        key_id=key_id,
    )


def checkpoint_document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The exported form of a stored checkpoint (what `audit_checkpoint --export` writes)."""
    return {
        "type": CHECKPOINT_FILE_TYPE,
        "issuer": settings.PORTAL_BASE_URL,
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "head_hash": checkpoint.head_hash,
        "issued_at": checkpoint.issued_at.astimezone(UTC).isoformat(timespec="seconds"),
        "key_id": checkpoint.key_id,
        "statement": checkpoint.statement,
    }


def checkpoint_document_verify(raw: str, jwks: dict[str, Any]) -> CheckpointClaims:
    """Check an exported checkpoint file's text against `jwks`; else CheckpointInvalid."""
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointInvalid(f"not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(document, dict) or document.get("type") != CHECKPOINT_FILE_TYPE:
        raise CheckpointInvalid(
            f'not an audit checkpoint (its "type" is not {CHECKPOINT_FILE_TYPE!r})'
        )
    statement = document.get("statement")
    if not isinstance(statement, str):
        raise CheckpointInvalid('it has no signed "statement"')
    claims = checkpoint_statement_verify(statement, jwks)
    for field in ("tree_size", "root_hash", "head_hash"):
        if document.get(field) != getattr(claims, field):
            raise CheckpointInvalid(f"its {field} disagrees with its signed statement")
    return claims


def checkpoint_claims_of(checkpoint: AuditCheckpoint) -> CheckpointClaims:
    """A stored checkpoint's claims as its row holds them."""
    return CheckpointClaims(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        head_hash=checkpoint.head_hash,
        issued_at=checkpoint.issued_at,
        key_id=checkpoint.key_id,
    )

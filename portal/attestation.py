"""Signed attestations: statements the portal makes that a deploy step verifies offline.

An attestation is a compact JWS (a JWT) signed with the portal's private key and
verified against the public keys published at `/.well-known/jwks.json`. The gate puts
these claims in it, and `deploy/ci/verify-attestation.py` checks them:
`model`, `version`, `target`, `image_digest`, `approvers`, `review`; this module adds
`iss` (PORTAL_BASE_URL), `iat`, `exp` and `jti`, and the `kid` and `typ` headers.

Keys come from ATTESTATION_SIGNING_KEYS, a JSON list of private keys in PEM form:

    [{"kid": "2025-06", "pem": "-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n"}]

Ed25519 (EdDSA) is preferred; RSA (RS256, 2048 bits or more) and P-256 (ES256) are
accepted. The first key signs; every key's public half is published. To rotate: add
the new key second (published, not yet signing), wait for verifiers' cached JWKS to
expire, move it first, and remove the old one once the last attestation it signed
has expired.

In development (DJANGO_DEBUG=true) with no keys set, a key is derived from SECRET_KEY,
so the web server and the worker sign with the same key; settings refuse to start
without keys when DJANGO_DEBUG=false.
"""

import functools
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

ATTESTATION_TYPE = "attestation+jwt"
# Every claim a valid attestation must carry, whatever the gate puts beside them.
_REGISTERED_CLAIMS = ("iss", "iat", "exp")
_ALGORITHMS = ("EdDSA", "ES256", "RS256")
_DEV_KEY_CONTEXT = b"model-governance-portal attestation development key v1"

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class AttestationInvalid(Exception):
    """The token is not a valid attestation from the keys given; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public_key = self.private_key.public_key()
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk = algorithm.to_jwk(public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def _algorithm_for(private_key: object, *, kid: str, variable: str) -> str:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ImproperlyConfigured(f"{variable}: key {kid!r} must be on curve P-256 for ES256")
        return "ES256"
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < 2048:
            raise ImproperlyConfigured(f"{variable}: RSA key {kid!r} must have 2048 bits or more")
        return "RS256"
    raise ImproperlyConfigured(f"{variable}: key {kid!r} must be Ed25519, P-256 or RSA")


def _load_private_key(pem: str, *, kid: str, variable: str) -> SigningKey:
    try:
        private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # Never echo the PEM: it is a secret.
        raise ImproperlyConfigured(
            f"{variable}: key {kid!r} is not an unencrypted PEM private key"
        ) from exc
    algorithm = _algorithm_for(private_key, kid=kid, variable=variable)
    return SigningKey(kid=kid, algorithm=algorithm, private_key=private_key)  # type: ignore[arg-type]


def attestation_keys_parse(
    raw: str, *, variable: str = "ATTESTATION_SIGNING_KEYS"
) -> list[dict[str, str]]:
    """Check ATTESTATION_SIGNING_KEYS and return it as [{"kid": ..., "pem": ...}, ...].

    Empty means "not configured". Raises ImproperlyConfigured naming the variable (and
    never the key material) on anything else that is not a list of loadable keys with
    distinct ids. Called by settings, so a bad key stops the portal at start-up.
    """
    if not raw.strip():
        return []
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(
            f'{variable} must be a JSON list of {{"kid": ..., "pem": ...}} objects'
        ) from exc
    if not isinstance(entries, list) or not entries:
        raise ImproperlyConfigured(f'{variable} must be a non-empty JSON list of {{"kid", "pem"}}')
    keys: list[dict[str, str]] = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"kid", "pem"}:
            raise ImproperlyConfigured(
                f'{variable}[{position}] must be an object with exactly "kid" and "pem"'
            )
        kid, pem = entry["kid"], entry["pem"]
        if not isinstance(kid, str) or not kid.strip() or not isinstance(pem, str):
            raise ImproperlyConfigured(f"{variable}[{position}] needs a non-empty string kid")
        if any(existing["kid"] == kid for existing in keys):
            raise ImproperlyConfigured(f"{variable}: key id {kid!r} appears twice")
        _load_private_key(pem, kid=kid, variable=variable)
        keys.append({"kid": kid, "pem": pem})
    return keys


@functools.lru_cache(maxsize=8)
def _keys_loaded(configured: tuple[tuple[str, str], ...]) -> tuple[SigningKey, ...]:
    return tuple(
        _load_private_key(pem, kid=kid, variable="ATTESTATION_SIGNING_KEYS")
        for kid, pem in configured
    )


@functools.lru_cache(maxsize=4)
def _development_key(secret_key: str) -> SigningKey:
    seed = hmac.new(secret_key.encode(), _DEV_KEY_CONTEXT, hashlib.sha256).digest()
    private_key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public_raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    kid = "dev-" + hashlib.sha256(public_raw).hexdigest()[:16]
    logger.warning(
        "ATTESTATION_SIGNING_KEYS is not set: signing attestations with development key %s "
        "derived from SECRET_KEY; never use this in production",
        kid,
    )
    return SigningKey(kid=kid, algorithm="EdDSA", private_key=private_key)


def signing_keys() -> tuple[SigningKey, ...]:
    """The configured keys, the signing one first.

    Without configured keys this is the development key: settings only allow that
    with DJANGO_DEBUG=true (tests run with DEBUG switched off by pytest-django, so the
    check lives in settings rather than here).
    """
    configured = getattr(settings, "ATTESTATION_SIGNING_KEYS", [])
    if not configured:
        return (_development_key(settings.SECRET_KEY),)
    return _keys_loaded(tuple((entry["kid"], entry["pem"]) for entry in configured))


def public_jwks(keys: tuple[SigningKey, ...] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The JWK set of `keys` (every configured key by default): their public halves.

    /.well-known/jwks.json passes the approved keys only (portal.changes.configuration).
    """
    return {"keys": [key.public_jwk() for key in (signing_keys() if keys is None else keys)]}


def attestation_sign(
    claims: dict[str, Any], *, expires_at: datetime, key: SigningKey | None = None
) -> str:
    """Sign `claims` with `key` (the first configured key by default); returns a compact JWS.

    The gate passes the first approved key (portal.changes.configuration).

    Adds `iss` (PORTAL_BASE_URL), `iat` (now), `exp` (`expires_at`) and a random `jti`;
    the caller may not set those itself. No side effects beyond a warning logged once
    per process when the development key is in use.
    """
    reserved = {"iss", "iat", "exp", "jti"} & set(claims)
    if reserved:
        raise ValueError(f"claims set by attestation_sign itself: {', '.join(sorted(reserved))}")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    now = datetime.now(tz=UTC)
    if expires_at <= now:
        raise ValueError("expires_at must be in the future")
    key = key or signing_keys()[0]
    payload = {
        **claims,
        "iss": settings.PORTAL_BASE_URL,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(
        payload,
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": ATTESTATION_TYPE},
    )


def attestation_verify(
    token: str, jwks: dict[str, Any], *, issuer: str | None = None
) -> dict[str, Any]:
    """The claims of `token` if a key of `jwks` signed it, it has not expired and it was
    issued by `issuer` (PORTAL_BASE_URL by default); otherwise AttestationInvalid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AttestationInvalid(f"not a compact JWS: {exc}") from exc
    if header.get("typ") != ATTESTATION_TYPE:
        raise AttestationInvalid(f"typ header is {header.get('typ')!r}, not {ATTESTATION_TYPE!r}")
    kid = header.get("kid")
    try:
        key_set = jwt.PyJWKSet.from_dict(jwks)
    except jwt.PyJWTError as exc:
        raise AttestationInvalid(f"unusable JWK set: {exc}") from exc
    matching = [key for key in key_set.keys if kid and key.key_id == kid]
    if not matching:
        raise AttestationInvalid(f"no published key has kid {kid!r}")
    key = matching[0]
    # The algorithm comes from our key, never from the token's header.
    if key.algorithm_name not in _ALGORITHMS or header.get("alg") != key.algorithm_name:
        raise AttestationInvalid(f"algorithm {header.get('alg')!r} does not match key {kid!r}")
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            issuer=issuer if issuer is not None else settings.PORTAL_BASE_URL,
            options={"require": list(_REGISTERED_CLAIMS)},
        )
    except jwt.PyJWTError as exc:
        raise AttestationInvalid(str(exc)) from exc

"""Attestations: signing, offline verification, key rotation, the published JWK set and
the settings that hold the keys."""

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from portal.attestation import (
    AttestationInvalid,
    attestation_keys_parse,
    attestation_sign,
    attestation_verify,
    public_jwks,
)

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
CLAIMS = {
    "model": "demand-forecasting",
    "version": "1.4.0",
    "target": "production",
    "image_digest": "sha256:" + "ab" * 32,
    "approvers": [{"role": "devops", "user": "u-a002"}],
    "review": 17,
}


def pem_of(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def ed25519_pem() -> str:
    return pem_of(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture()
def keys(settings):
    configured = [{"kid": "2025-06", "pem": ed25519_pem()}]
    settings.ATTESTATION_SIGNING_KEYS = configured
    settings.PORTAL_BASE_URL = "https://governance.zeromargin.example"
    return configured


@time_machine.travel(NOW, tick=False)
def test_attestation_sign_then_verify_returns_the_claims(keys):
    token = attestation_sign(CLAIMS, expires_at=NOW + timedelta(days=7))

    claims = attestation_verify(token, public_jwks())
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert claims["iss"] == "https://governance.zeromargin.example"
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] == int((NOW + timedelta(days=7)).timestamp())
    assert claims["jti"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": "2025-06", "typ": "attestation+jwt"}


def test_attestation_verify_refuses_an_expired_attestation(keys):
    with time_machine.travel(NOW, tick=False):
        token = attestation_sign(CLAIMS, expires_at=NOW + timedelta(hours=1))
    with (
        time_machine.travel(NOW + timedelta(hours=1, seconds=1), tick=False),
        pytest.raises(AttestationInvalid, match="expired"),
    ):
        attestation_verify(token, public_jwks())


def test_attestation_verify_refuses_a_tampered_payload(keys):
    token = attestation_sign(CLAIMS, expires_at=datetime.now(UTC) + timedelta(hours=1))
    header, _payload, signature = token.split(".")
    forged = jwt.utils.base64url_encode(
        json.dumps(
            {**jwt.decode(token, options={"verify_signature": False}), "target": "canary"}
        ).encode()
    ).decode()

    with pytest.raises(AttestationInvalid, match="Signature verification failed"):
        attestation_verify(f"{header}.{forged}.{signature}", public_jwks())


def test_attestation_verify_refuses_a_key_signed_by_someone_else_under_our_kid(keys):
    impostor = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(
        {**CLAIMS, "iss": "https://governance.zeromargin.example", "iat": 0, "exp": 2**31},
        impostor,
        algorithm="EdDSA",
        headers={"kid": "2025-06", "typ": "attestation+jwt"},
    )

    with pytest.raises(AttestationInvalid, match="Signature verification failed"):
        attestation_verify(token, public_jwks())


def test_attestation_verify_refuses_unsigned_and_symmetric_tokens(keys):
    claims = {**CLAIMS, "iss": "https://governance.zeromargin.example", "iat": 0, "exp": 2**31}
    unsigned = jwt.encode(
        claims, None, algorithm="none", headers={"kid": "2025-06", "typ": "attestation+jwt"}
    )
    # The classic confusion: an HMAC keyed with the published public key.
    public_x = public_jwks()["keys"][0]["x"]
    hmac_signed = jwt.encode(
        claims,
        public_x.encode() * 2,
        algorithm="HS256",
        headers={"kid": "2025-06", "typ": "attestation+jwt"},
    )

    for token in (unsigned, hmac_signed):
        with pytest.raises(AttestationInvalid, match="does not match key"):
            attestation_verify(token, public_jwks())


def test_attestation_verify_refuses_unknown_kid_wrong_type_and_wrong_issuer(keys, settings):
    token = attestation_sign(CLAIMS, expires_at=datetime.now(UTC) + timedelta(hours=1))

    renamed = {"keys": [{**key, "kid": "2024-12"} for key in public_jwks()["keys"]]}
    with pytest.raises(AttestationInvalid, match="no published key has kid '2025-06'"):
        attestation_verify(token, renamed)
    with pytest.raises(AttestationInvalid, match="unusable JWK set"):
        attestation_verify(token, {"keys": []})
    with pytest.raises(AttestationInvalid, match="issuer"):
        attestation_verify(token, public_jwks(), issuer="https://elsewhere.example")

    other = jwt.encode(
        {**CLAIMS, "iss": settings.PORTAL_BASE_URL, "iat": 0, "exp": 2**31},
        serialization.load_pem_private_key(keys[0]["pem"].encode(), None),
        algorithm="EdDSA",
        headers={"kid": "2025-06"},
    )
    with pytest.raises(AttestationInvalid, match="typ header"):
        attestation_verify(other, public_jwks())
    with pytest.raises(AttestationInvalid, match="not a compact JWS"):
        attestation_verify("not-a-token", public_jwks())


def test_attestation_sign_refuses_reserved_claims_and_past_expiry(keys):
    with pytest.raises(ValueError, match="iss"):
        attestation_sign({**CLAIMS, "iss": "me"}, expires_at=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(ValueError, match="future"):
        attestation_sign(CLAIMS, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone"):
        attestation_sign(CLAIMS, expires_at=datetime(2099, 1, 1))


def test_key_rotation_first_key_signs_and_old_attestations_still_verify(settings):
    old = {"kid": "2025-01", "pem": ed25519_pem()}
    new = {"kid": "2025-06", "pem": ed25519_pem()}
    expires = datetime.now(UTC) + timedelta(days=1)
    settings.ATTESTATION_SIGNING_KEYS = [old]
    signed_before = attestation_sign(CLAIMS, expires_at=expires)

    settings.ATTESTATION_SIGNING_KEYS = [new, old]
    signed_after = attestation_sign(CLAIMS, expires_at=expires)
    jwks = public_jwks()

    assert [key["kid"] for key in jwks["keys"]] == ["2025-06", "2025-01"]
    assert jwt.get_unverified_header(signed_after)["kid"] == "2025-06"
    assert attestation_verify(signed_before, jwks)["version"] == "1.4.0"
    assert attestation_verify(signed_after, jwks)["version"] == "1.4.0"

    settings.ATTESTATION_SIGNING_KEYS = [new]
    with pytest.raises(AttestationInvalid, match="no published key has kid '2025-01'"):
        attestation_verify(signed_before, public_jwks())


@pytest.mark.parametrize(
    ("private_key", "algorithm", "kty"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "RSA"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256", "EC"),
    ],
)
def test_rsa_and_p256_keys_also_sign(settings, private_key, algorithm, kty):
    settings.ATTESTATION_SIGNING_KEYS = [{"kid": "k1", "pem": pem_of(private_key)}]

    token = attestation_sign(CLAIMS, expires_at=datetime.now(UTC) + timedelta(hours=1))

    assert jwt.get_unverified_header(token)["alg"] == algorithm
    [jwk] = public_jwks()["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == (kty, algorithm, "sig", "k1")
    assert "d" not in jwk
    assert attestation_verify(token, public_jwks())["model"] == "demand-forecasting"


def test_development_key_is_derived_from_secret_key_and_warned_about(settings, caplog):
    settings.ATTESTATION_SIGNING_KEYS = []
    settings.SECRET_KEY = "a-development-secret-key-for-this-test-only-0001"
    with caplog.at_level(logging.WARNING, logger="portal.attestation"):
        first = public_jwks()
    again = public_jwks()
    settings.SECRET_KEY = "a-development-secret-key-for-this-test-only-0002"
    other = public_jwks()

    assert first == again
    assert first["keys"][0]["kid"].startswith("dev-")
    assert first["keys"][0]["alg"] == "EdDSA"
    assert other["keys"][0]["kid"] != first["keys"][0]["kid"]
    assert "ATTESTATION_SIGNING_KEYS is not set" in caplog.text
    token = attestation_sign(CLAIMS, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert attestation_verify(token, other)["target"] == "production"


def test_development_key_is_the_same_in_another_process(settings):
    """The web server and the worker derive the same key from the same SECRET_KEY."""
    secret = "a-development-secret-key-shared-by-web-and-worker-0003"
    settings.ATTESTATION_SIGNING_KEYS = []
    settings.SECRET_KEY = secret
    env = {
        k: v for k, v in os.environ.items() if k not in {"ATTESTATION_SIGNING_KEYS", "DJANGO_DEBUG"}
    }
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import json; from portal.attestation import public_jwks; "
            "print(json.dumps(public_jwks()))",
        ],
        cwd=ROOT,
        env={**env, "SECRET_KEY": secret},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == public_jwks()


# --- the configured format --------------------------------------------------------------


def test_attestation_keys_parse_accepts_a_json_list_of_kid_and_pem():
    pem = ed25519_pem()
    raw = json.dumps([{"kid": "2025-06", "pem": pem}, {"kid": "2025-01", "pem": ed25519_pem()}])

    parsed = attestation_keys_parse(raw)

    assert [entry["kid"] for entry in parsed] == ["2025-06", "2025-01"]
    assert parsed[0]["pem"] == pem
    assert attestation_keys_parse("") == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-----BEGIN PRIVATE KEY-----", "must be a JSON list"),
        ('{"kid": "a"}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ('[{"kid": "a"}]', 'exactly "kid" and "pem"'),
        ('[{"kid": "", "pem": "x"}]', "non-empty string kid"),
        ('[{"kid": "a", "pem": "SECRET-MATERIAL"}]', "is not an unencrypted PEM private key"),
    ],
)
def test_attestation_keys_parse_refuses_bad_values_without_echoing_them(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message) as caught:
        attestation_keys_parse(raw)

    assert "SECRET-MATERIAL" not in str(caught.value)
    assert "ATTESTATION_SIGNING_KEYS" in str(caught.value)


def test_attestation_keys_parse_refuses_duplicate_ids_weak_and_public_keys():
    pem = ed25519_pem()
    with pytest.raises(ImproperlyConfigured, match="appears twice"):
        attestation_keys_parse(json.dumps([{"kid": "a", "pem": pem}, {"kid": "a", "pem": pem}]))

    # A weak key on purpose: settings must refuse it.
    small_rsa = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    with pytest.raises(ImproperlyConfigured, match="2048 bits"):
        attestation_keys_parse(json.dumps([{"kid": "a", "pem": small_rsa}]))

    p384 = pem_of(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ImproperlyConfigured, match="P-256"):
        attestation_keys_parse(json.dumps([{"kid": "a", "pem": p384}]))

    public_only = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ImproperlyConfigured, match="not an unencrypted PEM private key"):
        attestation_keys_parse(json.dumps([{"kid": "a", "pem": public_only}]))


# --- settings: production refuses to start without keys ---------------------------------

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "SECRET_KEY": "x7Gm2pQv9LrT4wZs8NcB1yKdF6hJ3uE5aR0oP-iXlVqWnMbCtYgSeHfDjAkUz",
    "ALLOWED_HOSTS": "governance.zeromargin.example",
    "PORTAL_BASE_URL": "https://governance.zeromargin.example",
    "DATABASE_URL": "sqlite:///:memory:",
}


def _manage_check(**env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION and k != "ATTESTATION_SIGNING_KEYS" and not k.startswith("GOOGLE_")
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_refuse_to_start_without_signing_keys():
    result = _manage_check(**PRODUCTION)

    assert result.returncode != 0
    assert "ATTESTATION_SIGNING_KEYS must be set when DJANGO_DEBUG=false" in result.stderr


def test_production_settings_refuse_an_unloadable_signing_key():
    bad = json.dumps([{"kid": "2025-06", "pem": "-----BEGIN PRIVATE KEY-----\nSECRET\n"}])
    result = _manage_check(**PRODUCTION, ATTESTATION_SIGNING_KEYS=bad)

    assert result.returncode != 0
    assert "key '2025-06' is not an unencrypted PEM private key" in result.stderr
    assert "SECRET\\n" not in result.stderr


def test_production_settings_start_with_signing_keys():
    keys = json.dumps([{"kid": "2025-06", "pem": ed25519_pem()}])
    result = _manage_check(**PRODUCTION, ATTESTATION_SIGNING_KEYS=keys)

    assert result.returncode == 0, result.stderr


# --- the published JWK set ----------------------------------------------------------------


def test_jwks_endpoint_is_public_cacheable_and_verifies_attestations(client, keys, db):
    token = attestation_sign(CLAIMS, expires_at=datetime.now(UTC) + timedelta(hours=1))

    response = client.get(reverse("jwks"))

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    body = response.json()
    [jwk] = body["keys"]
    assert (jwk["kid"], jwk["kty"], jwk["crv"], jwk["alg"]) == (
        "2025-06",
        "OKP",
        "Ed25519",
        "EdDSA",
    )
    assert "d" not in jwk
    assert attestation_verify(token, body)["image_digest"] == CLAIMS["image_digest"]


def test_jwks_endpoint_publishes_every_configured_key(client, settings, db):
    settings.ATTESTATION_SIGNING_KEYS = [
        {"kid": "2025-06", "pem": ed25519_pem()},
        {"kid": "2025-01", "pem": ed25519_pem()},
    ]

    response = client.get("/.well-known/jwks.json")

    assert [key["kid"] for key in response.json()["keys"]] == ["2025-06", "2025-01"]

"""deploy/ci/verify-attestation.py: a deploy step checks the gate's attestation offline."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from portal.attestation import attestation_sign, public_jwks

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "ci" / "verify-attestation.py"
ISSUER = "https://governance.zeromargin.example"
DIGEST = "sha256:" + "5e" * 32
CLAIMS = {
    "model": "customer-segmentation",
    "version": "3.0.1",
    "target": "canary",
    "image_digest": DIGEST,
    "approvers": [
        {"role": "data_science_lead", "reviewer": "u-7f3a"},
        {"role": "privacy_officer", "reviewer": "u-19c2"},
    ],
    "review": 42,
}
EXPECTED = {
    "--model": "customer-segmentation",
    "--version": "3.0.1",
    "--target": "canary",
    "--image-digest": DIGEST,
}


def _pem() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


@pytest.fixture()
def signed(settings, tmp_path):
    """Sign like the gate does and save the token and the published JWK set to files."""
    settings.PORTAL_BASE_URL = ISSUER
    settings.ATTESTATION_SIGNING_KEYS = [{"kid": "2025-06", "pem": _pem()}]

    def sign(claims=CLAIMS, *, expires_at=None) -> tuple[Path, Path]:
        token = attestation_sign(
            claims, expires_at=expires_at or datetime.now(UTC) + timedelta(hours=1)
        )
        token_file = tmp_path / "attestation.jwt"
        jwks_file = tmp_path / "jwks.json"
        token_file.write_text(token + "\n")
        jwks_file.write_text(json.dumps(public_jwks()))
        return token_file, jwks_file

    return sign


def verify(token_file: Path, jwks_file: Path, **overrides: str) -> subprocess.CompletedProcess:
    expected = {**EXPECTED, "--issuer": ISSUER, **overrides}
    arguments = [item for pair in expected.items() for item in pair if pair[1] is not None]
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--jwks",
            str(jwks_file),
            "--attestation",
            str(token_file),
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_verify_attestation_accepts_the_gates_statement(signed):
    result = verify(*signed())

    assert result.returncode == 0, result.stderr
    assert "OK customer-segmentation 3.0.1 -> canary" in result.stdout
    assert "review 42" in result.stdout
    assert "privacy_officer:u-19c2" in result.stdout


def test_verify_attestation_prints_the_expiry_as_a_date(signed):
    """The expiry is printed as an ISO 8601 instant in UTC, not as epoch seconds."""
    expires_at = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)

    result = verify(*signed(expires_at=expires_at))

    assert result.returncode == 0, result.stderr
    assert "expires 2099-01-02T03:04:05+00:00" in result.stdout


@pytest.mark.parametrize(
    ("flag", "value", "claim"),
    [
        ("--model", "demand-forecasting", "model"),
        ("--version", "3.0.2", "version"),
        ("--target", "production", "target"),
        ("--image-digest", "sha256:" + "00" * 32, "image_digest"),
    ],
)
def test_verify_attestation_refuses_another_deployment(signed, flag, value, claim):
    result = verify(*signed(), **{flag: value})

    assert result.returncode == 1
    assert f"REFUSED: attestation is for {claim}" in result.stderr


def test_verify_attestation_refuses_an_expired_statement(signed):
    past = datetime.now(UTC) - timedelta(days=2)
    with time_machine.travel(past, tick=False):
        files = signed(expires_at=past + timedelta(hours=1))

    result = verify(*files)

    assert result.returncode == 1
    assert "Signature has expired" in result.stderr


def test_verify_attestation_refuses_a_key_that_is_not_published(signed, tmp_path):
    token_file, _ = signed()
    stranger = tmp_path / "other-jwks.json"
    stranger.write_text(json.dumps({"keys": [{**public_jwks()["keys"][0], "kid": "someone-else"}]}))

    result = verify(token_file, stranger)

    assert result.returncode == 1
    assert "no published key has kid '2025-06'" in result.stderr


def test_verify_attestation_refuses_an_edited_statement(signed):
    token_file, jwks_file = signed()
    header, payload, signature = token_file.read_text().strip().split(".")
    token_file.write_text(f"{header}.{payload}.{signature[:-4]}AAAA")

    result = verify(token_file, jwks_file)

    assert result.returncode == 1
    assert "REFUSED" in result.stderr


def test_verify_attestation_refuses_another_issuer(signed):
    result = verify(*signed(), **{"--issuer": "https://portal.elsewhere.example"})

    assert result.returncode == 1
    assert "issuer" in result.stderr.lower()


def test_verify_attestation_missing_file_is_a_usage_error(signed, tmp_path):
    _, jwks_file = signed()

    result = verify(tmp_path / "missing.jwt", jwks_file)

    assert result.returncode == 2
    assert "cannot read input" in result.stderr

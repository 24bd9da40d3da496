"""deploy/audit/verify-audit.py: an auditor checks an exported trail against a signed
checkpoint and the JWKS, in a separate process with no database and no portal."""

import base64
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.urls import reverse

from portal.audit.actors import Actor
from portal.audit.checkpoints import checkpoint_document
from portal.audit.services import audit_checkpoint_create, audit_payloads_redact, audit_record

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "audit" / "verify-audit.py"
SYSTEM = Actor.system("test")

pytestmark = pytest.mark.django_db


def _run(tmp_path, events, checkpoint, jwks) -> subprocess.CompletedProcess:
    for name, value in (("events", events), ("checkpoint", checkpoint), ("jwks", jwks)):
        (tmp_path / f"{name}.json").write_text(json.dumps(value))
    # -I: isolated, no project on the path; the environment holds no database settings.
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT)]
        + [f"--{name}={tmp_path / f'{name}.json'}" for name in ("events", "checkpoint", "jwks")],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
        timeout=60,
        check=False,
    )


@pytest.fixture()
def exported(client_for, auditor):
    """A trail of events (one with a client address, one payload redacted), its checkpoint
    and the JWKS, as an auditor downloads them."""
    for i in range(6):
        audit_record(
            action="test.happened",
            actor=SYSTEM,
            object_type="thing",
            object_id=i % 3,
            payload={"n": i, "text": "naïve ✓", "ratio": 0.1 * i},
            client_ip="192.0.2.7" if i == 2 else None,
        )
    audit_payloads_redact(object_type="thing", object_id="1", reason="GDPR", actor=SYSTEM)
    checkpoint = checkpoint_document(audit_checkpoint_create())
    client = client_for(auditor)
    response = client.get(reverse("audit:export", args=["json"]))
    events = json.loads(b"".join(response.streaming_content))
    jwks = client.get("/.well-known/jwks.json").json()
    return events, checkpoint, jwks


def test_verify_audit_accepts_an_intact_export(tmp_path, exported):
    """Chain, payload digests and the signed Merkle root all hold: exit 0."""
    events, checkpoint, jwks = exported
    result = _run(tmp_path, events, checkpoint, jwks)
    assert result.returncode == 0, result.stderr
    assert f"the first {checkpoint['tree_size']} match the checkpoint" in result.stdout
    assert "2 redacted payloads" in result.stdout


def test_verify_audit_accepts_events_appended_after_the_checkpoint(
    tmp_path, exported, client_for, auditor
):
    """A longer export still holds: the checkpoint covers its first events."""
    _, checkpoint, jwks = exported
    audit_record(action="test.later", actor=SYSTEM, payload={"later": True})
    response = client_for(auditor).get(reverse("audit:export", args=["json"]))
    events = json.loads(b"".join(response.streaming_content))
    assert len(events) > checkpoint["tree_size"]
    result = _run(tmp_path, events, checkpoint, jwks)
    assert result.returncode == 0, result.stderr


def test_verify_audit_refuses_an_edited_payload(tmp_path, exported):
    events, checkpoint, jwks = exported
    events[0]["payload"]["n"] = 99
    result = _run(tmp_path, events, checkpoint, jwks)
    assert result.returncode == 1
    assert "event #1: its payload does not match its digest" in result.stderr


def test_verify_audit_refuses_a_truncated_export(tmp_path, exported):
    """The newest events dropped: the checkpoint covers more than the export holds."""
    events, checkpoint, jwks = exported
    result = _run(tmp_path, events[:-2], checkpoint, jwks)
    assert result.returncode == 1
    assert "events were removed" in result.stderr


def test_verify_audit_refuses_a_reordered_export(tmp_path, exported):
    """Two events swapped and renumbered: the chain no longer links."""
    events, checkpoint, jwks = exported
    events[1]["sequence"], events[2]["sequence"] = events[2]["sequence"], events[1]["sequence"]
    result = _run(tmp_path, events, checkpoint, jwks)
    assert result.returncode == 1
    assert "previous hash" in result.stderr or "do not match its hash" in result.stderr


def test_verify_audit_refuses_a_rewritten_chain_with_the_old_checkpoint(tmp_path, exported):
    """An event edited and every hash after it recomputed: the chain holds, the signed
    root does not."""
    events, checkpoint, jwks = exported
    spec = importlib.util.spec_from_file_location("verify_audit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    events[0]["action"] = "test.rewritten"
    prev = "0" * 64
    for event in events:
        event["prev_hash"] = prev
        event["hash"] = prev = module.event_hash(event, prev)
    result = _run(tmp_path, events, checkpoint, jwks)
    assert result.returncode == 1
    assert "do not have the checkpoint's signed root" in result.stderr


def test_verify_audit_refuses_a_checkpoint_signed_by_another_key(tmp_path, exported):
    """The JWKS of another key, or a statement edited after signing, is refused."""
    events, checkpoint, jwks = exported
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = other.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = jwks["keys"][0]["kid"]
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    forged = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA"}]}
    result = _run(tmp_path, events, checkpoint, forged)
    assert result.returncode == 1
    assert "signature does not hold" in result.stderr

    header, claims, signature = checkpoint["statement"].split(".")
    body = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    body["tree_size"] = 1
    edited = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    result = _run(
        tmp_path,
        events,
        checkpoint | {"statement": f"{header}.{edited}.{signature}", "tree_size": 1},
        jwks,
    )
    assert result.returncode == 1
    assert "signature does not hold" in result.stderr


def test_verify_audit_reports_unreadable_input_as_usage_error(tmp_path):
    (tmp_path / "events.json").write_text("[")
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            str(SCRIPT),
            "--events",
            str(tmp_path / "events.json"),
            "--checkpoint",
            str(tmp_path / "none.json"),
            "--jwks",
            str(tmp_path / "none.json"),
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot read the inputs" in result.stderr

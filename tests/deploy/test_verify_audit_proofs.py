"""A filtered view of the trail exported with inclusion proofs, checked by
deploy/audit/verify-audit.py --proofs in a separate process with no database: each
exported event is in the signed checkpoint's tree, unchanged; tampering is refused."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.audit.actors import Actor
from portal.audit.checkpoints import checkpoint_document
from portal.audit.models import AuditCheckpoint, AuditEvent
from portal.audit.services import audit_checkpoint_create, audit_payloads_redact, audit_record

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "audit" / "verify-audit.py"
SYSTEM = Actor.system("test")
PROOFS_URL = reverse("audit:export", args=["proofs.json"])

pytestmark = pytest.mark.django_db


def _script():
    spec = importlib.util.spec_from_file_location("verify_audit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path, proofs, jwks, checkpoint=None) -> subprocess.CompletedProcess:
    files = {"proofs": proofs, "jwks": jwks}
    if checkpoint is not None:
        files["checkpoint"] = checkpoint
    for name, value in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(value))
    # -I: isolated, no project on the path; the environment holds no database settings.
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT)]
        + [f"--{name}={tmp_path / f'{name}.json'}" for name in files],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
        timeout=60,
        check=False,
    )


def _append(count: int) -> None:
    for i in range(count):
        audit_record(
            action="test.happened",
            actor=SYSTEM,
            object_type="thing",
            object_id=i % 3,
            payload={"n": i, "text": "naïve ✓"},
            client_ip="192.0.2.7" if i == 4 else None,
        )


def _download(client, query: str = "") -> dict:
    response = client.get(f"{PROOFS_URL}?{query}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return json.loads(b"".join(response.streaming_content))


@pytest.fixture()
def exported(client_for, auditor):
    """One object's events (every third of 12, one payload redacted) with proofs, and
    the JWKS, as an auditor downloads them."""
    _append(12)
    audit_payloads_redact(object_type="thing", object_id="2", reason="GDPR", actor=SYSTEM)
    client = client_for(auditor)
    bundle = _download(client, "object_type=thing&object_id=1")
    jwks = client.get("/.well-known/jwks.json").json()
    return bundle, jwks


def test_proofs_export_carries_the_filtered_events_and_a_fresh_checkpoint(client_for, auditor):
    _append(12)
    client = client_for(auditor)
    client.get("/audit/")  # sign-in's own events happen before the count
    before = AuditEvent.objects.count()

    bundle = _download(client, "object_type=thing&object_id=1")

    checkpoint = AuditCheckpoint.objects.order_by("-tree_size").first()
    assert bundle["type"] == "audit-events-with-proofs"
    assert bundle["filters"] == {"object_type": "thing", "object_id": "1"}
    assert bundle["checkpoint"] == checkpoint_document(checkpoint)
    wanted = AuditEvent.objects.filter(object_type="thing", object_id="1").order_by("sequence")
    assert [e["sequence"] for e in bundle["events"]] == [e.sequence for e in wanted]
    assert len(bundle["events"]) == 4
    # A checkpoint was signed first, so it covers every event committed before.
    assert checkpoint.tree_size == before
    assert all(e["inclusion"]["tree_size"] == before for e in bundle["events"])


def test_verify_audit_proofs_accepts_an_intact_filtered_export(tmp_path, exported):
    bundle, jwks = exported
    result = _run(tmp_path, bundle, jwks)
    assert result.returncode == 0, result.stderr
    assert "OK: 4 exported events" in result.stdout
    assert "does not prove the filter left nothing out" in result.stdout


def test_verify_audit_proofs_accepts_the_same_checkpoint_given_apart(tmp_path, exported):
    bundle, jwks = exported
    result = _run(tmp_path, bundle, jwks, checkpoint=bundle["checkpoint"])
    assert result.returncode == 0, result.stderr


def test_verify_audit_proofs_of_redacted_payloads_still_hold(tmp_path, client_for, auditor):
    _append(6)
    audit_payloads_redact(object_type="thing", object_id="2", reason="GDPR", actor=SYSTEM)
    client = client_for(auditor)
    bundle = _download(client, "object_type=thing&object_id=2")
    assert sum(e["redacted"] for e in bundle["events"]) == 2
    result = _run(tmp_path, bundle, client.get("/.well-known/jwks.json").json())
    assert result.returncode == 0, result.stderr
    assert "2 redacted payloads" in result.stdout


def test_verify_audit_proofs_refuses_an_edited_payload(tmp_path, exported):
    bundle, jwks = exported
    bundle["events"][0]["payload"]["n"] = 99
    result = _run(tmp_path, bundle, jwks)
    assert result.returncode == 1
    n = bundle["events"][0]["sequence"]
    assert f"event #{n}: its payload does not match its digest" in result.stderr


def test_verify_audit_proofs_refuses_an_edited_event(tmp_path, exported):
    bundle, jwks = exported
    bundle["events"][1]["action"] = "test.rewritten"
    result = _run(tmp_path, bundle, jwks)
    assert result.returncode == 1
    n = bundle["events"][1]["sequence"]
    assert f"event #{n}: its fields do not match its hash" in result.stderr


def test_verify_audit_proofs_refuses_a_forged_event_with_a_consistent_hash(tmp_path, exported):
    """An event rewritten with its hash recomputed: its own fields agree, but it is not
    the leaf the signed tree holds."""
    bundle, jwks = exported
    event = bundle["events"][1]
    event["action"] = "test.rewritten"
    event["hash"] = _script().event_hash(event, event["prev_hash"])
    result = _run(tmp_path, bundle, jwks)
    assert result.returncode == 1
    n = event["sequence"]
    assert f"event #{n}: its inclusion proof does not lead to the signed root" in result.stderr


def test_verify_audit_proofs_refuses_a_tampered_proof_or_a_moved_event(tmp_path, exported):
    bundle, jwks = exported
    tampered = json.loads(json.dumps(bundle))
    node = tampered["events"][2]["inclusion"]["proof"][0]
    tampered["events"][2]["inclusion"]["proof"][0] = ("0" if node[0] != "0" else "1") + node[1:]
    result = _run(tmp_path, tampered, jwks)
    assert result.returncode == 1
    n = bundle["events"][2]["sequence"]
    assert f"event #{n}: its inclusion proof does not lead to the signed root" in result.stderr

    moved = json.loads(json.dumps(bundle))
    moved["events"][2]["inclusion"]["leaf_index"] = n
    result = _run(tmp_path, moved, jwks)
    assert result.returncode == 1
    assert f"event #{n}: its proof is for another place or tree" in result.stderr


def test_verify_audit_proofs_refuses_another_checkpoint_or_an_edited_one(
    tmp_path, exported, client_for, auditor
):
    bundle, jwks = exported
    audit_record(action="test.later", actor=SYSTEM)
    later = checkpoint_document(audit_checkpoint_create())
    result = _run(tmp_path, bundle, jwks, checkpoint=later)
    assert result.returncode == 1
    assert f"not the one given ({later['tree_size']} events)" in result.stderr

    edited = json.loads(json.dumps(bundle))
    edited["checkpoint"]["root_hash"] = "0" * 64
    result = _run(tmp_path, edited, jwks)
    assert result.returncode == 1
    assert "root_hash disagrees with its signed statement" in result.stderr


def test_verify_audit_proofs_refuses_a_plain_export_given_as_proofs(tmp_path, client_for, auditor):
    _append(2)
    client = client_for(auditor)
    plain = json.loads(
        b"".join(client.get(reverse("audit:export", args=["json"])).streaming_content)
    )
    result = _run(tmp_path, plain, client.get("/.well-known/jwks.json").json())
    assert result.returncode == 1
    assert "not an export of type 'audit-events-with-proofs'" in result.stderr


@pytest.mark.parametrize("count", [3, 12])
def test_proofs_export_query_count_does_not_grow(client_for, auditor, count):
    """The same number of queries for a small and a larger filtered set."""
    _append(count)
    client = client_for(auditor)
    _download(client, "object_type=thing")  # signs the checkpoint, warms the session
    with CaptureQueriesContext(connection) as queries:
        _download(client, "object_type=thing")
    # Session, user, roles; the checkpoint (head, latest twice); the events, the
    # actors' names, their payloads; the chain hashes the proofs are built from.
    assert len(queries) == 11, [q["sql"][:80] for q in queries]


def test_proofs_export_refuses_anonymous_and_role_less_callers(client, client_for, make_user):
    _append(2)
    anonymous = client.get(PROOFS_URL)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    assert client_for(make_user()).get(PROOFS_URL).status_code == 403


def test_proofs_export_names_a_bad_filter(client_for, auditor):
    response = client_for(auditor).get(f"{PROOFS_URL}?since=not-a-date")
    assert response.status_code == 400
    assert "since" in response.json()["fields"]

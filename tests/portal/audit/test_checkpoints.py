"""Signed checkpoints of the ledger's Merkle tree, proofs over the ledger, and
`audit_verify --checkpoint` catching a truncated, rewritten or reordered ledger."""

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction

from portal.attestation import attestation_sign, public_jwks
from portal.audit.actors import Actor
from portal.audit.checkpoints import (
    CheckpointInvalid,
    checkpoint_document,
    checkpoint_document_verify,
    checkpoint_statement_verify,
    event_leaf,
)
from portal.audit.merkle import consistency_verify, inclusion_verify, tree_root
from portal.audit.models import AuditCheckpoint, AuditEvent
from portal.audit.selectors import audit_consistency_proof, audit_inclusion_proof
from portal.audit.services import audit_checkpoint_create, audit_record
from portal.audit.tasks import checkpoint as checkpoint_task
from portal.audit.verification import audit_chain_verify

SYSTEM = Actor.system("test")


def _record(n: int, *, action: str = "test.happened", start: int = 0) -> list[AuditEvent]:
    return [
        audit_record(action=action, actor=SYSTEM, object_type="thing", object_id=i)
        for i in range(start, start + n)
    ]


def _tamper(*statements: str) -> None:
    """Raw SQL as someone with direct database access, triggers switched off."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        for sql in statements:
            cursor.execute(sql)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")


def _wipe_ledger() -> None:
    _tamper(
        "DELETE FROM audit_auditpayload",
        "DELETE FROM audit_auditevent",
        "DELETE FROM audit_auditchainhead",
        "DELETE FROM audit_auditcheckpoint",
    )


def _export(tmp_path, checkpoint: AuditCheckpoint):
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(checkpoint_document(checkpoint)))
    return path


def _leaves() -> list[bytes]:
    return [
        event_leaf(h)
        for h in AuditEvent.objects.order_by("sequence").values_list("hash", flat=True)
    ]


@pytest.mark.django_db
def test_audit_checkpoint_create_signs_the_merkle_root_of_the_ledger():
    """The signed statement carries the size, the RFC 9162 root over the events' chain
    hashes and the last hash, and verifies against the published JWKS."""
    events = _record(5)
    checkpoint = audit_checkpoint_create()
    assert checkpoint is not None
    assert checkpoint.tree_size == 5
    assert checkpoint.root_hash == tree_root(_leaves()).hex()
    assert checkpoint.head_hash == events[-1].hash
    claims = checkpoint_statement_verify(checkpoint.statement, public_jwks())
    assert (claims.tree_size, claims.root_hash, claims.head_hash) == (
        5,
        checkpoint.root_hash,
        events[-1].hash,
    )


@pytest.mark.django_db
def test_audit_checkpoint_create_signs_nothing_when_the_ledger_did_not_grow():
    """An empty ledger and an unchanged one get no new checkpoint."""
    assert audit_checkpoint_create() is None
    _record(2)
    assert audit_checkpoint_create() is not None
    assert audit_checkpoint_create() is None
    assert AuditCheckpoint.objects.count() == 1


@pytest.mark.django_db
def test_audit_checkpoint_create_continues_from_the_previous_frontier():
    """A checkpoint built on the previous one's frontier has the root of the whole tree."""
    for batch in (1, 6, 3, 8):
        _record(batch)
        checkpoint = audit_checkpoint_create()
        assert checkpoint.root_hash == tree_root(_leaves()).hex()
    assert list(
        AuditCheckpoint.objects.order_by("tree_size").values_list("tree_size", flat=True)
    ) == [
        1,
        7,
        10,
        18,
    ]


@pytest.mark.django_db
def test_audit_checkpoint_task_signs_a_checkpoint():
    """The hourly beat task signs the ledger's growth and reports the size."""
    _record(3)
    assert checkpoint_task() == 3
    assert checkpoint_task() is None


@pytest.mark.django_db
def test_audit_inclusion_proof_of_an_event_verifies_against_a_checkpoint():
    """Every event's proof recomputes the signed root of a later checkpoint."""
    _record(7)
    checkpoint = audit_checkpoint_create()
    root = bytes.fromhex(checkpoint.root_hash)
    for sequence in range(1, 8):
        proof = audit_inclusion_proof(sequence=sequence, tree_size=7)
        assert proof["root_hash"] == checkpoint.root_hash
        assert inclusion_verify(
            hashed_leaf=bytes.fromhex(proof["leaf_hash"]),
            index=sequence - 1,
            tree_size=7,
            proof=[bytes.fromhex(p) for p in proof["proof"]],
            root=root,
        )
    with pytest.raises(ValueError):
        audit_inclusion_proof(sequence=8, tree_size=7)
    with pytest.raises(ValueError):
        audit_inclusion_proof(sequence=1, tree_size=9)


@pytest.mark.django_db
def test_audit_consistency_proof_between_two_checkpoints_verifies():
    """The proof between two signed checkpoints shows the older tree is a prefix."""
    _record(5)
    old = audit_checkpoint_create()
    _record(6)
    new = audit_checkpoint_create()
    proof = audit_consistency_proof(first_size=old.tree_size, second_size=new.tree_size)
    assert (proof["first_root"], proof["second_root"]) == (old.root_hash, new.root_hash)
    assert consistency_verify(
        first_size=5,
        second_size=11,
        first_root=bytes.fromhex(old.root_hash),
        second_root=bytes.fromhex(new.root_hash),
        proof=[bytes.fromhex(p) for p in proof["proof"]],
    )


@pytest.mark.django_db
def test_audit_verify_with_a_checkpoint_file_passes_on_the_ledger_it_came_from(tmp_path, capsys):
    """An intact ledger that grew after the export still matches the exported checkpoint."""
    _record(4)
    call_command("audit_checkpoint", "--export", str(tmp_path / "checkpoint.json"))
    _record(3)
    call_command("audit_verify", "--checkpoint", str(tmp_path / "checkpoint.json"))
    out = capsys.readouterr().out
    assert "audit chain intact: 7 events checked" in out
    assert "2 checkpoints matched" in out  # the stored one and the exported one


@pytest.mark.django_db
def test_audit_verify_with_a_checkpoint_file_detects_truncation_with_checkpoints_deleted(tmp_path):
    """Newest events, the head row and every stored checkpoint rewritten to match: only
    the copy kept outside the database still disagrees."""
    events = _record(4)
    path = _export(tmp_path, audit_checkpoint_create())
    _tamper(
        f"DELETE FROM audit_auditpayload WHERE event_id = {events[3].pk}",
        f"DELETE FROM audit_auditevent WHERE id = {events[3].pk}",
        "DELETE FROM audit_auditcheckpoint",
        f"UPDATE audit_auditchainhead SET sequence = 3, hash = '{events[2].hash}' WHERE id = 1",
    )
    call_command("audit_verify")  # nothing inside the database disagrees any more
    with pytest.raises(CommandError, match=r"ends at event #3 .* covers 4 events"):
        call_command("audit_verify", "--checkpoint", str(path))


@pytest.mark.django_db
def test_audit_verify_with_a_checkpoint_file_detects_a_rewritten_ledger(tmp_path):
    """A ledger rebuilt from scratch with other events, internally consistent, does not
    have the signed root at the checkpoint's size."""
    _record(3)
    path = _export(tmp_path, audit_checkpoint_create())
    _wipe_ledger()
    _record(5, action="test.rewritten")
    assert audit_chain_verify().ok
    with pytest.raises(CommandError, match="first 3 events differ from the checkpoint"):
        call_command("audit_verify", "--checkpoint", str(path))


@pytest.mark.django_db
def test_audit_verify_with_a_checkpoint_file_detects_a_reordered_ledger(tmp_path):
    """The same events re-chained in another order do not match the signed root."""
    _record(1, start=0)
    _record(1, start=1)
    path = _export(tmp_path, audit_checkpoint_create())
    _wipe_ledger()
    _record(1, start=1)
    _record(1, start=0)
    with pytest.raises(CommandError, match="first 2 events differ"):
        call_command("audit_verify", "--checkpoint", str(path))


def _other_jwks(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "other", "alg": "EdDSA"}]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    return path


@pytest.mark.django_db
def test_audit_verify_refuses_a_checkpoint_file_it_cannot_trust(tmp_path):
    """A file not signed by the keys given, edited after signing, or not a checkpoint at
    all is refused with the reason, before the ledger is walked."""
    _record(2)
    checkpoint = audit_checkpoint_create()
    path = _export(tmp_path, checkpoint)
    with pytest.raises(CommandError, match="no published key has kid"):
        call_command(
            "audit_verify", "--checkpoint", str(path), "--jwks", str(_other_jwks(tmp_path))
        )

    edited = checkpoint_document(checkpoint) | {"tree_size": 1}
    path.write_text(json.dumps(edited))
    with pytest.raises(CommandError, match="tree_size disagrees with its signed statement"):
        call_command("audit_verify", "--checkpoint", str(path))

    statement = checkpoint.statement
    header, body, signature = statement.split(".")
    # One character of the signature changed (in the middle, so it still decodes).
    other = "A" if signature[10] != "A" else "B"
    signature = signature[:10] + other + signature[11:]
    forged = checkpoint_document(checkpoint) | {"statement": f"{header}.{body}.{signature}"}
    path.write_text(json.dumps(forged))
    with pytest.raises(CommandError, match="signature or claims do not hold"):
        call_command("audit_verify", "--checkpoint", str(path))

    path.write_text("{not json")
    with pytest.raises(CommandError, match="not JSON"):
        call_command("audit_verify", "--checkpoint", str(path))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("audit_verify", "--checkpoint", str(tmp_path / "missing.json"))


@pytest.mark.django_db
def test_checkpoint_document_verify_refuses_an_attestation_in_its_place():
    """A gate attestation signed with the same key is not a checkpoint (typ differs)."""
    token = attestation_sign({"tree_size": 1}, expires_at=datetime.now(tz=UTC) + timedelta(hours=1))
    document = json.dumps({"type": "audit-checkpoint", "statement": token})
    with pytest.raises(CheckpointInvalid, match="typ header"):
        checkpoint_document_verify(document, public_jwks())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_never_commits_behind_a_larger_one():
    """A worker that hashed the ledger at 3 events, then waits while another signs at 4,
    signs nothing smaller after it: it returns the larger checkpoint. Checkpoints so
    commit in the order of their sizes, which the Cloud Logging export's cursor needs."""
    _record(3)
    signed: dict[str, AuditCheckpoint | None] = {}

    def sign() -> None:
        try:
            signed["late"] = audit_checkpoint_create()
        finally:
            connections.close_all()

    with transaction.atomic():
        _record(1, start=3)  # holds the chain head until this block ends
        worker = threading.Thread(target=sign)
        worker.start()
        with connection.cursor() as cursor:
            for _ in range(200):
                # Within a transaction the activity view is read once unless cleared.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the other worker never waited for the chain head")
        larger = audit_checkpoint_create()
    worker.join(timeout=30)

    assert larger is not None and larger.tree_size == 4
    assert signed["late"] is not None and signed["late"].pk == larger.pk
    assert list(AuditCheckpoint.objects.values_list("tree_size", flat=True)) == [4]

"""deploy/ci/gate-check.sh against the real gate: the portal on a live test server,
a real API token, real reviews (approved, pending, rejected, none), and the
attestation checked against the portal's published keys."""

import importlib
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import time_machine

from governance.choices import Target
from governance.reviews.choices import ReviewSource, Verdict
from governance.reviews.services import review_decide, review_open
from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.attestation import attestation_verify
from portal.audit.actors import Actor
from tests.factories import ModelVersionFactory

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "ci" / "gate-check.sh"
DSL = Role.DATA_SCIENCE_LEAD


@pytest.fixture()
def board(make_user):
    """The people: a model owner who opens reviews, a data science lead who decides,
    and the DevOps engineer whose token CI uses."""
    return {
        "owner": make_user(Role.MODEL_OWNER),
        "lead": make_user(DSL),
        "ci": make_user(Role.DEVOPS),
    }


@pytest.fixture()
def token(board):
    def issue(*scopes: str) -> str:
        return apitoken_create(
            name="ci",
            owner=board["ci"],
            scopes=list(scopes or ["gates:read"]),
            expires_at=None,
            actor=Actor.system("tests"),
        ).secret

    return issue


@pytest.fixture()
def version(transactional_db):
    """A registered version, with the default review policies the data migration
    creates (a live server's tests start with empty tables)."""
    from django.apps import apps

    importlib.import_module("governance.reviews.migrations.0002_default_policies").create_defaults(
        apps, None
    )
    return ModelVersionFactory()


def _open(version, board, target: str = Target.STAGING):
    review, _ = review_open(
        version=version,
        target=target,
        requested_by_actor=board["owner"].audit_actor(),
        source=ReviewSource.UI,
    )
    return review


def _environment(live_server, secret: str, tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "PORTAL_URL": live_server.url,
        "PORTAL_TOKEN": secret,
        "GATE_WAIT_SECONDS": "0",
        "GATE_POLL_SECONDS": "0",
        "ATTESTATION_FILE": str(tmp_path / "attestation.jwt"),
        **env,
    }


def _gate_check(live_server, secret, tmp_path, version, target="staging", **env):
    return subprocess.run(
        ["bash", str(SCRIPT), version.model.slug, version.version, target],
        env=_environment(live_server, secret, tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_gate_check_live_approved_review_saves_a_verifiable_attestation(
    live_server, board, token, version, tmp_path
):
    """An approved review: exit 0, the real answer's review id and approvals printed,
    and an attestation that verifies against the portal's JWKS."""
    review = _open(version, board)
    review_decide(review=review, reviewer=board["lead"], verdict=Verdict.APPROVE, role=DSL)
    secret = token()

    result = _gate_check(live_server, secret, tmp_path, version)

    assert result.returncode == 0, result.stderr
    assert f"may deploy to staging\n  review: {review.pk}\n" in result.stdout
    assert f"approved by user:{board['lead'].pk} as {DSL}" in result.stdout
    assert secret not in result.stdout + result.stderr
    jwks = requests.get(f"{live_server.url}/.well-known/jwks.json", timeout=10).json()
    claims = attestation_verify((tmp_path / "attestation.jwt").read_text().strip(), jwks)
    assert (claims["model"], claims["version"], claims["target"]) == (
        version.model.slug,
        version.version,
        "staging",
    )


def test_gate_check_live_waits_for_a_pending_review_until_it_is_approved(
    live_server, board, token, version, tmp_path
):
    """A pending review: the script reports what is missing and polls; once the board
    approves, the next check passes."""
    review = _open(version, board)
    process = subprocess.Popen(
        ["bash", str(SCRIPT), version.model.slug, version.version, "staging"],
        env=_environment(
            live_server, token(), tmp_path, GATE_WAIT_SECONDS="60", GATE_POLL_SECONDS="1"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        first = [process.stdout.readline() for _ in range(3)]
        review_decide(review=review, reviewer=board["lead"], verdict=Verdict.APPROVE, role=DSL)
        rest, errors = process.communicate(timeout=60)
    finally:
        process.kill()

    assert process.returncode == 0, errors
    assert first[0].startswith("gate-check: review pending (check 1)")
    assert first[1] == f"  missing approvals: {DSL}\n"
    assert "may deploy to staging" in rest
    assert (tmp_path / "attestation.jwt").exists()


def test_gate_check_live_pending_review_runs_out_of_wait(
    live_server, board, token, version, tmp_path
):
    """Still pending when the wait runs out: exit 1 with the roles still missing."""
    _open(version, board, Target.CANARY)

    result = _gate_check(live_server, token(), tmp_path, version, "canary", GATE_POLL_SECONDS="5")

    assert result.returncode == 1
    assert "for canary still pending after 0s (1 checks)" in result.stderr
    assert f"missing approvals: {DSL}, devops" in result.stderr
    assert not (tmp_path / "attestation.jwt").exists()


def test_gate_check_live_rejected_review_is_refused(live_server, board, token, version, tmp_path):
    """A rejected review: exit 1 naming the state."""
    review = _open(version, board)
    review_decide(
        review=review, reviewer=board["lead"], verdict=Verdict.REJECT, role=DSL, comment="No"
    )

    result = _gate_check(live_server, token(), tmp_path, version)

    assert result.returncode == 1
    assert "may NOT deploy to staging: rejected" in result.stderr
    assert not (tmp_path / "attestation.jwt").exists()


def test_gate_check_live_expired_approval_is_refused(live_server, board, token, version, tmp_path):
    """An approval past its validity: exit 1 naming the state, no attestation."""
    review = _open(version, board)
    review_decide(review=review, reviewer=board["lead"], verdict=Verdict.APPROVE, role=DSL)
    review.refresh_from_db()
    secret = token()

    # The live server runs in this process, so it sees the travelled clock.
    with time_machine.travel(review.expires_at + timedelta(days=1)):
        result = _gate_check(live_server, secret, tmp_path, version)

    assert result.returncode == 1
    assert "may NOT deploy to staging: expired" in result.stderr
    assert not (tmp_path / "attestation.jwt").exists()


def test_gate_check_live_no_review_lists_the_failed_checks(
    live_server, board, token, version, tmp_path
):
    """No review for the target: exit 1; the real answer's failed checks (plain names)
    are printed one per line."""
    result = _gate_check(live_server, token(), tmp_path, version, "production")

    assert result.returncode == 1
    assert "may NOT deploy to production: no_review" in result.stderr
    assert "failed check: previous_target_approved" in result.stderr


def test_gate_check_live_token_without_the_scope_is_an_error(
    live_server, board, token, version, tmp_path
):
    """A real token without gates:read: exit 2 pointing at the scope, not a refusal."""
    _open(version, board)

    result = _gate_check(live_server, token("reviews:read"), tmp_path, version)

    assert result.returncode == 2
    assert "check the token's gates:read scope" in result.stderr
    assert "lacks the scope" in result.stderr


def test_gate_check_live_unknown_token_is_an_error(live_server, version, tmp_path):
    """A token the portal does not know: exit 2 with the 401."""
    result = _gate_check(live_server, "gp_00000000_unknown", tmp_path, version)

    assert result.returncode == 2
    assert "the gate answered HTTP 401" in result.stderr

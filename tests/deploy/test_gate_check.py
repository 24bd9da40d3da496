"""deploy/ci/gate-check.sh, run as CI runs it, against a local server playing the gate."""

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "ci" / "gate-check.sh"
TOKEN = "zmgp_ci_0123456789abcdef"
GATE_PATH = "/api/v1/gates/demand-forecasting/1.4.0/production"
ATTESTATION = "eyJhbGciOiJFZERTQSJ9.eyJtb2RlbCI6ImRlbWFuZC1mb3JlY2FzdGluZyJ9.c2lnbmF0dXJl"

PENDING = (
    403,
    {
        "allowed": False,
        "state": "pending",
        "missing_roles": ["privacy_officer", "devops"],
        "failed_checks": [],
    },
)
APPROVED = (
    200,
    {
        "allowed": True,
        "review": {"id": 17, "state": "approved"},
        "approvals": [
            {"role": "data_science_lead", "reviewer": "u-7f3a", "decided_at": "2025-06-02T09:00Z"},
            {"role": "privacy_officer", "reviewer": "u-19c2", "decided_at": "2025-06-02T09:30Z"},
            {"role": "devops", "reviewer": "u-a002", "decided_at": "2025-06-02T10:00Z"},
        ],
        "expires_at": "2025-06-09T10:00:00Z",
        "attestation": ATTESTATION,
    },
)
REJECTED = (
    403,
    {
        "allowed": False,
        "state": "rejected",
        "missing_roles": ["devops"],
        "failed_checks": [
            {"name": "metrics_not_worse", "detail": "MAPE 9.1% worse than production (max 5%)"}
        ],
    },
)


@dataclass
class FakeGate:
    """Answers each request with the next scripted (status, JSON) pair; the last repeats."""

    answers: list[tuple]  # (status, JSON) or (status, JSON, headers)
    seen: list[dict] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "FakeGate":
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.seen.append(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "at": time.monotonic(),
                    }
                )
                index = min(len(gate.seen), len(gate.answers)) - 1
                status, payload, *extra = gate.answers[index]
                body = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"


@pytest.fixture()
def gate_check(tmp_path: Path) -> Iterator:
    def run(portal_url: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
        attestation_file = tmp_path / "out" / "attestation.jwt"
        attestation_file.parent.mkdir(exist_ok=True)
        environment = {
            "PATH": os.environ["PATH"],
            "PORTAL_URL": portal_url,
            "PORTAL_TOKEN": TOKEN,
            "GATE_WAIT_SECONDS": "60",
            # The script sleeps between checks; the tests ask it not to wait at all.
            "GATE_POLL_SECONDS": "0",
            "ATTESTATION_FILE": str(attestation_file),
            **env,
        }
        result = subprocess.run(
            ["bash", str(SCRIPT), *(args or ("demand-forecasting", "1.4.0", "production"))],
            env={k: v for k, v in environment.items() if v is not None},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        return result, attestation_file

    yield run


def test_gate_check_waits_while_pending_then_saves_the_attestation(gate_check):
    with FakeGate([PENDING, PENDING, APPROVED]) as gate:
        result, attestation_file = gate_check(gate.url)

    assert result.returncode == 0, result.stderr
    assert [request["path"] for request in gate.seen] == [GATE_PATH] * 3
    assert {request["authorization"] for request in gate.seen} == {f"Bearer {TOKEN}"}
    assert attestation_file.read_text().strip() == ATTESTATION
    assert "review pending (check 1)" in result.stdout
    assert "missing approvals: privacy_officer, devops" in result.stdout
    assert "approved by u-19c2 as privacy_officer" in result.stdout
    assert "approved by u-a002 as devops" in result.stdout
    assert "review: 17" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_gate_check_fails_on_rejection_with_the_reasons(gate_check):
    with FakeGate([REJECTED]) as gate:
        result, attestation_file = gate_check(gate.url)

    assert result.returncode == 1
    assert len(gate.seen) == 1
    assert "may NOT deploy to production: rejected" in result.stderr
    assert "missing approvals: devops" in result.stderr
    assert "failed check: metrics_not_worse (MAPE 9.1% worse than production" in result.stderr
    assert not attestation_file.exists()


@pytest.mark.parametrize("state", ["no_review", "expired", "discarded"])
def test_gate_check_fails_without_a_valid_review(gate_check, state):
    answer = (
        403,
        {
            "allowed": False,
            "state": state,
            "missing_roles": ["data_science_lead", "privacy_officer", "devops"],
            "failed_checks": ["card_complete"],
        },
    )
    with FakeGate([answer]) as gate:
        result, attestation_file = gate_check(gate.url)

    assert result.returncode == 1
    assert len(gate.seen) == 1
    assert f"may NOT deploy to production: {state}" in result.stderr
    assert "failed check: card_complete" in result.stderr
    assert not attestation_file.exists()


def test_gate_check_gives_up_when_the_wait_runs_out(gate_check):
    with FakeGate([PENDING]) as gate:
        result, attestation_file = gate_check(
            gate.url, GATE_WAIT_SECONDS="0", GATE_POLL_SECONDS="5"
        )

    assert result.returncode == 1
    assert len(gate.seen) == 1
    assert "still pending after 0s (1 checks)" in result.stderr
    assert not attestation_file.exists()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((500, {"error": "Internal error", "fields": {}}), "the gate answered HTTP 500"),
        ((401, {"error": "Invalid token.", "fields": {}}), "the gate answered HTTP 401"),
        (
            (403, {"error": "This token lacks the scope(s): gates:read.", "fields": {}}),
            "check the token's gates:read scope",
        ),
        ((200, {"allowed": True}), "200 from the gate without an attestation"),
    ],
)
def test_gate_check_other_answers_are_errors(gate_check, answer, message):
    with FakeGate([answer]) as gate:
        result, attestation_file = gate_check(gate.url)

    assert result.returncode == 2
    assert message in result.stderr
    assert not attestation_file.exists()


def test_gate_check_unreachable_portal_is_an_error(gate_check):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result, _ = gate_check(f"http://127.0.0.1:{port}")

    assert result.returncode == 2
    assert "could not reach" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("demand-forecasting", "1.4.0"), {}, "usage: gate-check.sh MODEL VERSION TARGET"),
        ((), {"PORTAL_TOKEN": None}, "PORTAL_TOKEN is not set"),
        ((), {"GATE_WAIT_SECONDS": "soon"}, "GATE_WAIT_SECONDS must be a whole number"),
    ],
)
def test_gate_check_refuses_bad_invocations(gate_check, args, env, message):
    with FakeGate([APPROVED]) as gate:
        result, _ = gate_check(gate.url, *args, **env)

    assert result.returncode == 2
    assert message in result.stderr
    assert gate.seen == []


def test_gate_check_quotes_path_segments(gate_check):
    with FakeGate([APPROVED]) as gate:
        result, _ = gate_check(gate.url, "demand forecasting", "1.4.0+build/7", "production")

    assert result.returncode == 0, result.stderr
    assert gate.seen[0]["path"] == "/api/v1/gates/demand%20forecasting/1.4.0%2Bbuild%2F7/production"


UNAVAILABLE = (
    503,
    {"error": "The database is briefly unavailable; try again shortly.", "fields": {}},
    {"Retry-After": "1"},
)


def test_gate_check_retries_a_503_after_its_retry_after(gate_check):
    """A portal that is briefly unavailable is asked again once its Retry-After has
    passed, and the answer after it counts."""
    with FakeGate([UNAVAILABLE, APPROVED]) as gate:
        result, attestation_file = gate_check(gate.url)

    assert result.returncode == 0, result.stderr
    assert len(gate.seen) == 2
    assert gate.seen[1]["at"] - gate.seen[0]["at"] >= 1.0
    assert "briefly unavailable (HTTP 503, check 1); asking again in 1s" in result.stdout
    assert attestation_file.read_text().strip() == ATTESTATION


def test_gate_check_gives_up_when_unavailable_past_the_wait(gate_check):
    """A Retry-After that reaches past GATE_WAIT_SECONDS ends the check as an error,
    without waiting it out."""
    unavailable = (*UNAVAILABLE[:2], {"Retry-After": "30"})
    with FakeGate([unavailable]) as gate:
        started = time.monotonic()
        result, attestation_file = gate_check(gate.url, GATE_WAIT_SECONDS="2")

    assert result.returncode == 2
    assert time.monotonic() - started < 10
    assert len(gate.seen) == 1
    assert "the gate answered HTTP 503 and asked to wait 30s, past the 2s wait" in result.stderr
    assert "database is briefly unavailable" in result.stderr
    assert not attestation_file.exists()

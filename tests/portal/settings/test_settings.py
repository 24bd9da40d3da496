"""Settings come from the environment and refuse unsafe production values.

Each case starts a fresh `manage.py` process, since settings are read at import.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _throwaway_signing_key() -> str:
    """A fresh Ed25519 key for these processes; it signs nothing real."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "SECRET_KEY": "x7Gm2pQv9LrT4wZs8NcB1yKdF6hJ3uE5aR0oP-iXlVqWnMbCtYgSeHfDjAkUz",
    "ALLOWED_HOSTS": "governance.zeromargin.example",
    "PORTAL_BASE_URL": "https://governance.zeromargin.example",
    "DATABASE_URL": "sqlite:///:memory:",
    "ATTESTATION_SIGNING_KEYS": json.dumps([{"kid": "test-2026", "pem": _throwaway_signing_key()}]),
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # The browser tests switch Django's async safety off for this process; a
    # production process must not inherit that (check --deploy flags it).
    leaked = {"DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION and k not in leaked and not k.startswith("GOOGLE_")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_under_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "short"}, "at least 50 characters"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must be set"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG must be true or false"),
        ({"PORTAL_BASE_URL": "governance.example"}, "PORTAL_BASE_URL must be an http(s) URL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of"),
        (
            {"GOOGLE_OAUTH2_KEY": "k", "GOOGLE_OAUTH2_SECRET": "s"},
            "GOOGLE_WORKSPACE_DOMAIN must be set",
        ),
        ({"PASSWORD_LOGIN_ENABLED": "false"}, "needs Google SSO configured"),
        ({"ATTESTATION_SIGNING_KEYS": ""}, "ATTESTATION_SIGNING_KEYS must be set"),
        ({"ATTESTATION_SIGNING_KEYS": "not json"}, "ATTESTATION_SIGNING_KEYS"),
        ({"PIPELINES_BACKEND": "vertex"}, "PIPELINES_BACKEND=vertex needs GOOGLE_CLOUD_PROJECT"),
        ({"PIPELINES_BACKEND": "kubeflow"}, "PIPELINES_BACKEND must be one of"),
        (
            {"VERTEX_SUPPRESSION_KEY_SECRET": "dsar-suppression-key"},
            "VERTEX_SUPPRESSION_KEY_SECRET must name a secret version",
        ),
    ],
)
def test_production_settings_refuse_to_start_on_bad_values(override, message):
    env = {**PRODUCTION, **override}
    env = {k: v for k, v in env.items() if v != ""}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_json_logs_when_asked(tmp_path):
    result = _manage(
        "shell",
        "-c",
        "import logging; logging.getLogger('portal').warning('hello json')",
        LOG_FORMAT="json",
    )
    line = next(line for line in result.stderr.splitlines() if "hello json" in line)
    assert '"severity": "WARNING"' in line and '"message": "hello json"' in line


@pytest.mark.parametrize(
    ("value", "threshold"), [(None, "5"), ("true", "5"), ("false", "None")], ids=str
)
def test_prepared_statements_follow_database_prepared_statements(value, threshold):
    """On PostgreSQL, DATABASE_PREPARED_STATEMENTS (on by default) sets psycopg's
    prepare_threshold, which lets the gate's query be prepared; false leaves it None
    (Django's default), for a pooler that cannot keep prepared statements."""
    env = {"DATABASE_URL": "postgres://portal@127.0.0.1:5432/portal"}
    if value is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = value
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])",
        **env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == threshold


def test_database_prepared_statements_refuses_what_is_not_a_boolean():
    """A value that is neither true nor false stops the portal at start, naming it."""
    result = _manage(
        "check",
        DATABASE_URL="postgres://portal@127.0.0.1:5432/portal",
        DATABASE_PREPARED_STATEMENTS="sometimes",
    )
    assert result.returncode != 0
    assert "DATABASE_PREPARED_STATEMENTS must be true or false" in result.stderr


@pytest.mark.parametrize(
    "secret",
    [
        "projects/zm-ml/secrets/dsar-suppression-key/versions/3",
        "projects/zm-ml/locations/europe-west4/secrets/dsar-suppression-key/versions/latest",
    ],
)
def test_production_settings_accept_global_and_regional_secret_versions(secret):
    """VERTEX_SUPPRESSION_KEY_SECRET takes a global secret's version or a regional one's."""
    result = _manage("check", **PRODUCTION, VERTEX_SUPPRESSION_KEY_SECRET=secret)
    assert result.returncode == 0, result.stderr

"""Signing keys and password sign-in come from the environment; a changed value that
loosens waits for a second admin, and until then the portal acts on the approved one."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.urls import reverse

from portal.accounts.choices import Role
from portal.attestation import public_jwks
from portal.audit.models import AuditEvent
from portal.changes.choices import ChangeState
from portal.changes.configuration import (
    NoApprovedSigningKey,
    attestation_keys_approved,
    attestation_signing_key,
    password_login_allowed,
)
from portal.changes.models import ApprovedConfiguration, ChangeRequest
from portal.changes.services import change_approve
from portal.changes.tasks import expire as beat_task
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def key(kid: str) -> dict[str, str]:
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return {"kid": kid, "pem": pem}


def published(client) -> list[str]:
    return [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]]


def test_first_key_set_is_the_baseline_and_signs(settings, client):
    """A new installation: the keys seen first are recorded (audited) and used."""
    settings.ATTESTATION_SIGNING_KEYS = [key("2026-01")]
    assert published(client) == ["2026-01"]
    assert attestation_signing_key().kid == "2026-01"
    assert AuditEvent.objects.filter(action="configuration.baseline_recorded").count() == 1
    assert not ChangeRequest.objects.exists()


def test_an_added_key_is_neither_published_nor_signing_until_a_second_admin_approves(
    settings, client, make_user
):
    """One person adding a key to the environment gets a pending request, not a key."""
    old, new = key("2026-01"), key("2026-06")
    settings.ATTESTATION_SIGNING_KEYS = [old]
    attestation_keys_approved()
    settings.ATTESTATION_SIGNING_KEYS = [new, old]

    assert published(client) == ["2026-01"]
    assert attestation_signing_key().kid == "2026-01"
    change = ChangeRequest.objects.get(kind="configuration.attestation_signing_keys")
    assert change.state == ChangeState.PENDING and "add 2026-06" in change.summary
    assert {e["kid"] for e in change.after["value"]} == {"2026-01", "2026-06"}
    assert published(client) == ["2026-01"]  # asked again: still one request
    assert ChangeRequest.objects.filter(state="pending").count() == 1

    change_approve(change=change, approved_by=make_user(Role.PORTAL_ADMIN))

    assert published(client) == ["2026-06", "2026-01"]
    assert attestation_signing_key().kid == "2026-06"


def test_a_replaced_key_under_the_same_id_is_refused_for_signing(settings):
    """Same kid, different key material: not approved, so the portal refuses to sign."""
    settings.ATTESTATION_SIGNING_KEYS = [key("2026-01")]
    attestation_keys_approved()
    settings.ATTESTATION_SIGNING_KEYS = [key("2026-01")]
    with pytest.raises(NoApprovedSigningKey):
        attestation_signing_key()
    assert public_jwks(attestation_keys_approved()) == {"keys": []}
    change = ChangeRequest.objects.get(state="pending")
    assert "replace 2026-01" in change.summary


def test_the_beat_task_turns_a_changed_key_set_into_a_pending_request(settings):
    settings.ATTESTATION_SIGNING_KEYS = [key("a")]
    beat_task()
    settings.ATTESTATION_SIGNING_KEYS = [key("b")]
    beat_task()
    assert ChangeRequest.objects.filter(state="pending").count() == 1


def test_password_login_switched_off_applies_at_once(settings):
    """Switching password sign-in off only tightens: recorded, no request."""
    settings.PASSWORD_LOGIN_ENABLED = True
    assert password_login_allowed()
    settings.PASSWORD_LOGIN_ENABLED = False
    assert not password_login_allowed()
    assert ApprovedConfiguration.objects.get(name="password_login_enabled").value is False
    assert not ChangeRequest.objects.exists()


def test_password_login_switched_back_on_waits_for_a_second_admin(settings, client, make_user):
    """PASSWORD_LOGIN_ENABLED=true again: the form stays refused until approved."""
    person = make_user(Role.DEVOPS)
    settings.PASSWORD_LOGIN_ENABLED = False
    password_login_allowed()
    settings.PASSWORD_LOGIN_ENABLED = True

    response = client.post(
        reverse("accounts:login"), {"username": person.email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 302 and "_auth_user_id" not in client.session
    change = ChangeRequest.objects.get(kind="configuration.password_login_enabled")
    assert change.before == {"value": False} and change.after == {"value": True}

    change_approve(change=change, approved_by=make_user(Role.PORTAL_ADMIN))
    client.post(reverse("accounts:login"), {"username": person.email, "password": DEFAULT_PASSWORD})
    assert client.session["_auth_user_id"] == str(person.pk)

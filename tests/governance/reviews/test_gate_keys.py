"""The gate signs only with an approved attestation key."""

import jwt
import pytest

from governance.choices import Target
from portal.accounts.choices import Role
from portal.changes.configuration import attestation_keys_approved
from portal.changes.models import ChangeRequest
from portal.changes.services import change_approve
from tests.portal.changes.test_configuration import key

pytestmark = pytest.mark.django_db


def test_gate_signs_with_the_approved_key_and_refuses_when_none_is(
    settings, client, api_token, version, approved_for, make_user
):
    """A key swapped in the environment by one person is not used: the gate answers
    503 until a second admin approves the new key, then signs with it."""
    settings.ATTESTATION_SIGNING_KEYS = [key("old")]
    attestation_keys_approved()
    approved_for(version, Target.STAGING)
    secret, _ = api_token("gates:read")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    url = f"/api/v1/gates/{version.model.slug}/{version.version}/staging"
    assert jwt.get_unverified_header(client.get(url).json()["attestation"])["kid"] == "old"

    settings.ATTESTATION_SIGNING_KEYS = [key("new")]
    response = client.get(url)
    assert response.status_code == 503
    assert "second portal admin" in response.json()["error"]

    change_approve(
        change=ChangeRequest.objects.get(state="pending"),
        approved_by=make_user(Role.PORTAL_ADMIN),
    )
    assert jwt.get_unverified_header(client.get(url).json()["attestation"])["kid"] == "new"

"""API tokens: issued once, stored as a hash, scoped, expiring, revocable, audited."""

import io
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from portal.accounts.choices import Role
from portal.apitokens.models import ApiToken, token_hash
from portal.apitokens.services import apitoken_create, apitoken_revoke
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _issue(owner, scopes=("gates:read",), **kwargs):
    return apitoken_create(
        name="ci",
        owner=owner,
        scopes=list(scopes),
        expires_at=None,
        actor=owner.audit_actor(),
        **kwargs,
    )


def _bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_apitoken_create_stores_only_a_hash_and_audits(devops):
    issued = _issue(devops)
    token = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.secret.startswith(f"gp_{token.prefix}_")
    assert token.secret_hash == token_hash(issued.secret)
    assert issued.secret not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    event = AuditEvent.objects.get(action="apitoken.created")
    assert event.object_id == token.prefix
    assert issued.secret not in str(event.payload_record.data)


def test_apitoken_create_refuses_unknown_scopes(devops):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as excinfo:
        _issue(devops, scopes=["gates:read", "everything:write"])
    assert "everything:write" in str(excinfo.value.message_dict["scopes"])


def test_bearer_token_authenticates_and_records_last_use(client, devops):
    issued = _issue(devops, scopes=["gates:read", "registry:read"])
    response = client.get(reverse("api-whoami"), **_bearer(issued.secret))
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "token" and body["token"] == issued.token.prefix
    assert body["scopes"] == ["gates:read", "registry:read"]
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at is not None


@pytest.mark.parametrize(
    "header",
    ["Bearer gp_nothing_here", "Bearer", "Bearer a b", "Bearer not-even-our-format"],
)
def test_bad_bearer_tokens_get_a_json_401(client, header):
    response = client.get(reverse("api-whoami"), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) >= {"error", "fields"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_no_credentials_get_a_json_401(client):
    response = client.get(reverse("api-whoami"))
    assert response.status_code == 401
    assert response.json()["error"]


def test_revoked_token_is_refused_at_once(client, devops):
    issued = _issue(devops)
    apitoken_revoke(token=issued.token, actor=devops.audit_actor())
    assert client.get(reverse("api-whoami"), **_bearer(issued.secret)).status_code == 401
    assert AuditEvent.objects.filter(action="apitoken.revoked").exists()


def test_expired_token_is_refused(client, devops):
    issued = apitoken_create(
        name="short",
        owner=devops,
        scopes=["gates:read"],
        expires_at=timezone.now() + timedelta(hours=1),
        actor=devops.audit_actor(),
    )
    assert client.get(reverse("api-whoami"), **_bearer(issued.secret)).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert client.get(reverse("api-whoami"), **_bearer(issued.secret)).status_code == 401


def test_token_of_a_deactivated_owner_is_refused(client, devops):
    issued = _issue(devops)
    devops.is_active = False
    devops.save()
    assert client.get(reverse("api-whoami"), **_bearer(issued.secret)).status_code == 401


def test_token_page_shows_the_secret_once(client_for, devops):
    client = client_for(devops)
    response = client.post(
        reverse("apitokens:create"), {"name": "cloud-build", "scopes": ["gates:read"]}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="cloud-build")
    html = response.content.decode()
    assert f"gp_{token.prefix}_" in html
    listing = client.get(reverse("apitokens:list")).content.decode()
    assert token.prefix in listing and f"gp_{token.prefix}_" not in listing


def test_token_page_shows_field_errors(client_for, devops):
    response = client_for(devops).post(reverse("apitokens:create"), {"name": "", "scopes": []})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "role", [Role.AUDITOR, Role.PRIVACY_OFFICER, Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER]
)
def test_token_pages_are_refused_to_other_roles(client_for, make_user, role):
    client = client_for(make_user(role))
    assert client.get(reverse("apitokens:list")).status_code == 403
    assert (
        client.post(
            reverse("apitokens:create"), {"name": "x", "scopes": ["gates:read"]}
        ).status_code
        == 403
    )
    assert not ApiToken.objects.exists()


def test_devops_cannot_revoke_someone_elses_token(client_for, make_user):
    owner, other = make_user(Role.DEVOPS), make_user(Role.DEVOPS)
    issued = _issue(owner)
    response = client_for(other).post(reverse("apitokens:revoke", args=[issued.token.pk]))
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=issued.token.pk).revoked_at is None


def test_admin_sees_and_revokes_every_token(client_for, admin_user, devops):
    issued = _issue(devops)
    client = client_for(admin_user)
    assert issued.token.prefix in client.get(reverse("apitokens:list")).content.decode()
    client.post(reverse("apitokens:revoke", args=[issued.token.pk]))
    assert ApiToken.objects.get(pk=issued.token.pk).revoked_at is not None


def test_apitoken_command_creates_lists_and_revokes():
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "apitoken",
        "create",
        "--name",
        "ci",
        "--machine-role",
        "auditor",
        "--scopes",
        "gates:read",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    token = ApiToken.objects.get(name="ci")
    assert token.secret_hash == token_hash(secret)
    assert "shown only once" in err.getvalue()
    listing = io.StringIO()
    call_command("apitoken", "list", stdout=listing)
    assert token.prefix in listing.getvalue() and secret not in listing.getvalue()
    call_command("apitoken", "revoke", token.prefix, stdout=io.StringIO())
    assert ApiToken.objects.get(pk=token.pk).status == "revoked"


def test_apitoken_command_refuses_unknown_scope():
    with pytest.raises(CommandError, match="Unknown scopes"):
        call_command("apitoken", "create", "--name", "ci", "--scopes", "root", stdout=io.StringIO())


def test_apitoken_command_without_owner_uses_a_machine_account_that_is_no_person(
    client, client_for, admin_user
):
    """The machine owner is flagged, listed apart from people, and never signs in."""
    from portal.accounts.models import User
    from tests.factories import DEFAULT_PASSWORD

    call_command(
        "apitoken",
        "create",
        "--name",
        "ci",
        "--machine-role",
        "model_owner",
        "--scopes",
        "registry:write,reviews:write,gates:read",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    machine = ApiToken.objects.get(name="ci").owner
    assert machine.is_machine and machine.roles == {Role.MODEL_OWNER}
    assert AuditEvent.objects.filter(action="role.granted", object_id=str(machine.pk)).exists()
    page = client_for(admin_user).get(reverse("accounts:user_list")).content.decode()
    people, _, machines = page.partition("<h2>Machine accounts</h2>")
    assert machine.email not in people and machine.email in machines
    machine.set_password(DEFAULT_PASSWORD)
    machine.save()
    client.logout()
    client.post(
        reverse("accounts:login"), {"username": machine.email, "password": DEFAULT_PASSWORD}
    )
    assert "_auth_user_id" not in client.session
    assert User.objects.filter(is_machine=True).count() == 1


def test_apitoken_command_machine_account_without_a_role_gets_no_scope():
    """A token of the machine account can do only what its roles allow: none, nothing."""
    with pytest.raises(CommandError, match="owner's roles do not allow: gates:read"):
        call_command(
            "apitoken",
            "create",
            "--name",
            "ci",
            "--scopes",
            "gates:read",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )


def test_apitoken_command_finds_the_owner_whatever_the_case(make_user):
    owner = make_user(Role.AUDITOR, email="auditor@zeromargin.example")
    call_command(
        "apitoken",
        "create",
        "--name",
        "ci",
        "--owner",
        "Auditor@ZeroMargin.example",
        "--scopes",
        "gates:read",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert ApiToken.objects.get(name="ci").owner == owner

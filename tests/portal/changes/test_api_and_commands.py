"""The same four-eyes rule through the API and the operator's command line."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant, User
from portal.accounts.services import role_grant
from portal.apitokens.scopes import scopes_allowed_for
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest

pytestmark = pytest.mark.django_db


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def holds(user, role) -> bool:
    return RoleGrant.objects.filter(user=user, role=role, revoked_at__isnull=True).exists()


@pytest.fixture()
def proposed(admin_user, outsider):
    return role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin_user)


def test_api_lists_and_a_second_admin_approves(make_user, proposed, outsider):
    second = make_user(Role.PORTAL_ADMIN)
    client = api_as(second)
    listing = client.get("/api/v1/governance/changes?state=pending").json()
    assert [c["id"] for c in listing] == [proposed.pk]
    assert listing[0]["after"] == {"user": outsider.pk, "role": "devops", "holds": True}

    response = client.post(
        f"/api/v1/governance/changes/{proposed.pk}/approve", {"reason": "ok"}, format="json"
    )

    assert response.status_code == 200 and response.json()["state"] == "approved"
    assert holds(outsider, Role.DEVOPS)


def test_api_approve_by_the_proposer_is_400_with_the_error_shape(admin_user, proposed, outsider):
    response = api_as(admin_user).post(
        f"/api/v1/governance/changes/{proposed.pk}/approve", {}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid input."
    assert "another portal admin" in body["fields"]["change"][0]
    assert not holds(outsider, Role.DEVOPS)


def test_api_bad_input_is_400_not_500(make_user, proposed):
    client = api_as(make_user(Role.PORTAL_ADMIN))
    assert client.get("/api/v1/governance/changes?state=nonsense").status_code == 400
    response = client.post(
        f"/api/v1/governance/changes/{proposed.pk}/approve", ["not", "an", "object"], format="json"
    )
    assert response.status_code == 400 and "fields" in response.json()
    assert (
        client.post("/api/v1/governance/changes/999999/approve", {}, format="json").status_code
        == 404
    )


@pytest.mark.parametrize("role", [r for r in Role if r != Role.PORTAL_ADMIN])
def test_api_is_refused_to_non_admins(make_user, proposed, outsider, role):
    client = api_as(make_user(role))
    assert client.get("/api/v1/governance/changes").status_code == 403
    response = client.post(f"/api/v1/governance/changes/{proposed.pk}/approve", {}, format="json")
    assert response.status_code == 403 and "error" in response.json()
    assert not holds(outsider, Role.DEVOPS)


def test_api_refuses_tokens_even_an_admins(make_user, proposed, outsider):
    """A machine credential never counts as the second pair of eyes."""
    admin = make_user(Role.PORTAL_ADMIN)
    issued = apitoken_create(
        name="x",
        owner=admin,
        scopes=scopes_allowed_for(admin.roles),
        expires_at=None,
        actor=Actor.system("tests"),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    response = client.post(f"/api/v1/governance/changes/{proposed.pk}/approve", {}, format="json")
    assert response.status_code == 403
    assert "not by a token" in response.json()["error"]
    assert not holds(outsider, Role.DEVOPS)


def test_operator_approves_alone_on_a_single_admin_installation(proposed, outsider):
    """Bootstrap: no second admin exists, so one operator on the server may approve;
    the ledger names the operator and the reason."""
    call_command(
        "governance_change", "approve", str(proposed.pk), "--operator", "alice", "--reason", "setup"
    )
    assert holds(outsider, Role.DEVOPS)
    event = AuditEvent.objects.get(action="change_request.approved")
    assert (event.actor_type, event.actor_id) == ("system", "operator:alice")
    assert event.payload_record.data["operators"] == [{"name": "alice", "reason": "setup"}]
    assert event.payload_record.data["break_glass"] is False


def test_operator_alone_is_refused_once_a_second_admin_exists(make_user, proposed, outsider):
    make_user(Role.PORTAL_ADMIN)
    with pytest.raises(CommandError, match="second portal admin"):
        call_command(
            "governance_change", "approve", str(proposed.pk), "--operator", "a", "--reason", "r"
        )
    assert not holds(outsider, Role.DEVOPS)


def test_break_glass_needs_two_distinct_operators_and_is_flagged(make_user, proposed, outsider):
    make_user(Role.PORTAL_ADMIN)
    with pytest.raises(CommandError, match="two different operators"):
        call_command(
            "governance_change",
            "approve",
            str(proposed.pk),
            "--operator",
            "a",
            "--reason",
            "r",
            "--operator",
            "a",
            "--reason",
            "r",
        )
    call_command(
        "governance_change",
        "approve",
        str(proposed.pk),
        "--operator",
        "alice",
        "--reason",
        "admins unreachable",
        "--operator",
        "bob",
        "--reason",
        "incident 42",
    )
    assert holds(outsider, Role.DEVOPS)
    proposed.refresh_from_db()
    assert proposed.break_glass and proposed.state == ChangeState.APPROVED
    flagged = AuditEvent.objects.get(action="change_request.break_glass")
    assert [o["name"] for o in flagged.payload_record.data["operators"]] == ["alice", "bob"]


def test_operator_command_proposes_a_board_role_and_cannot_approve_its_own(outsider, capsys):
    call_command(
        "governance_change",
        "grant-role",
        outsider.email,
        "data_science_lead",
        "--operator",
        "carol",
        "--reason",
        "new lead",
    )
    change = ChangeRequest.objects.get(state="pending")
    assert change.proposed_by_actor == "system:operator:carol"
    with pytest.raises(CommandError, match="proposed this"):
        call_command(
            "governance_change", "approve", str(change.pk), "--operator", "carol", "--reason", "r"
        )
    assert not holds(outsider, Role.DATA_SCIENCE_LEAD)
    call_command("governance_change", "list", "--state", "pending")
    assert f"#{change.pk}" in capsys.readouterr().out


def test_demo_users_bootstraps_through_the_operator_path_and_leaves_a_proposal():
    """The demo's users get their board roles through change requests (bootstrap by
    operator, then admin proposes and the second admin approves), and one proposal
    stays pending for the demo; running it again changes nothing."""
    call_command("demo_users")
    call_command("demo_users")

    assert User.objects.get(email="dsl@zeromargin.example").roles == {Role.DATA_SCIENCE_LEAD}
    assert User.objects.get(email="admin2@zeromargin.example").roles == {Role.PORTAL_ADMIN}
    [pending] = ChangeRequest.objects.filter(state="pending")
    assert pending.summary == "Grant Data science lead to analyst@zeromargin.example"
    assert pending.proposed_by.email == "admin@zeromargin.example"
    assert ChangeRequest.objects.filter(state="approved").count() == 5
    assert not ChangeRequest.objects.filter(break_glass=True).exists()

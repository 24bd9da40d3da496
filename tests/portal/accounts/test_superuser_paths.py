"""No way round the four-eyes rule for portal admins from the server's shell: Django's
createsuperuser and changepassword are refused (nothing written), the manager refuses
to make a superuser, and the audited way to add the first person is governance_change
add-user."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from portal.accounts.models import User
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_createsuperuser_is_refused_pointing_at_governance_change():
    with pytest.raises(CommandError, match="governance_change grant-role"):
        call_command("createsuperuser", "--noinput", "--email", "root@zeromargin.example")
    assert not User.objects.exists()
    assert not AuditEvent.objects.exists()


def test_createsuperuser_is_refused_interactively_too():
    with pytest.raises(CommandError, match="switched off"):
        call_command("createsuperuser")
    assert not User.objects.exists()


def test_changepassword_is_refused_and_the_password_stays(make_user):
    person = make_user()
    before = person.password
    with pytest.raises(CommandError, match="set-password link"):
        call_command("changepassword", person.email)
    person.refresh_from_db()
    assert person.password == before


def test_user_manager_refuses_to_make_a_superuser():
    with pytest.raises(PermissionError):
        User.objects.create_superuser("root@zeromargin.example", "x")
    assert not User.objects.exists()


def test_governance_change_add_user_makes_a_role_less_audited_account(capsys):
    call_command(
        "governance_change",
        "add-user",
        "First.Admin@ZeroMargin.example",
        "--operator",
        "alice",
        "--reason",
        "first install",
    )
    user = User.objects.get()
    assert user.email == "first.admin@zeromargin.example"
    assert (user.roles, user.is_superuser, user.is_staff, user.has_usable_password()) == (
        frozenset(),
        False,
        False,
        False,
    )
    event = AuditEvent.objects.get(action="user.created")
    assert (event.actor_type, event.actor_id) == ("system", "operator:alice")
    assert event.payload_record.data["reason"] == "first install"


def test_governance_change_add_user_twice_is_a_command_error():
    args = ["governance_change", "add-user", "a@zeromargin.example"]
    call_command(*args, "--operator", "alice", "--reason", "x")
    with pytest.raises(CommandError, match="already exists"):
        call_command(*args, "--operator", "alice", "--reason", "x")
    assert User.objects.count() == 1

"""Roles: admins grant and revoke them in the portal, every change is audited."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant, User
from portal.accounts.services import role_grant, role_revoke
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_role_grant_gives_the_role_and_audits_it(admin_user, outsider):
    role_grant(user=outsider, role=Role.AUDITOR, granted_by=admin_user, client_ip="192.0.2.1")
    assert User.objects.get(pk=outsider.pk).roles == {Role.AUDITOR}
    event = AuditEvent.objects.get(action="role.granted", object_id=str(outsider.pk))
    assert event.actor_id == str(admin_user.pk)
    assert event.payload_record.data["role"] == "auditor"


def test_role_grant_twice_is_refused(admin_user, outsider):
    role_grant(user=outsider, role=Role.AUDITOR, granted_by=admin_user)
    with pytest.raises(ValidationError, match="already holds"):
        role_grant(user=outsider, role=Role.AUDITOR, granted_by=admin_user)


def test_role_revoke_keeps_history_and_audits(admin_user, make_user):
    person = make_user(Role.DEVOPS)
    role_revoke(user=person, role=Role.DEVOPS, revoked_by=admin_user)
    assert User.objects.get(pk=person.pk).roles == frozenset()
    grant = RoleGrant.objects.get(user=person, role=Role.DEVOPS)
    assert grant.revoked_at is not None and grant.revoked_by == admin_user
    assert AuditEvent.objects.filter(action="role.revoked", object_id=str(person.pk)).exists()


def test_the_last_portal_admin_cannot_be_removed(admin_user):
    with pytest.raises(ValidationError, match="last portal admin"):
        role_revoke(user=admin_user, role=Role.PORTAL_ADMIN, revoked_by=admin_user)


def test_a_user_can_hold_several_roles(make_user):
    person = make_user(Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER)
    assert person.roles == {Role.DATA_SCIENCE_LEAD, Role.MODEL_OWNER}
    assert person.board_roles == {Role.DATA_SCIENCE_LEAD}


def test_grant_page_grants_and_audits(client_for, admin_user, outsider):
    # A role outside the board applies at once; board roles wait for a second admin
    # (tests/portal/changes).
    response = client_for(admin_user).post(
        reverse("accounts:user_role_grant", args=[outsider.pk]),
        {"role": "auditor"},
        follow=True,
    )
    assert "Role granted" in response.content.decode()
    assert User.objects.get(pk=outsider.pk).roles == {Role.AUDITOR}
    event = AuditEvent.objects.get(action="role.granted")
    assert event.payload_record.client_ip == "127.0.0.1"


def test_grant_page_rejects_an_unknown_role(client_for, admin_user, outsider):
    response = client_for(admin_user).post(
        reverse("accounts:user_role_grant", args=[outsider.pk]), {"role": "emperor"}, follow=True
    )
    assert "Choose one of the listed roles" in response.content.decode()
    assert User.objects.get(pk=outsider.pk).roles == frozenset()


@pytest.mark.parametrize("role", [r for r in Role if r != Role.PORTAL_ADMIN])
def test_role_management_is_refused_to_non_admins(client_for, make_user, outsider, role):
    client = client_for(make_user(role))
    assert client.get(reverse("accounts:user_list")).status_code == 403
    assert client.get(reverse("accounts:user_detail", args=[outsider.pk])).status_code == 403
    response = client.post(
        reverse("accounts:user_role_grant", args=[outsider.pk]), {"role": "auditor"}
    )
    assert response.status_code == 403
    assert User.objects.get(pk=outsider.pk).roles == frozenset()


def test_role_grant_requires_csrf(admin_user, outsider):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user, backend="django.contrib.auth.backends.ModelBackend")
    response = client.post(
        reverse("accounts:user_role_grant", args=[outsider.pk]), {"role": "auditor"}
    )
    assert response.status_code == 403
    assert User.objects.get(pk=outsider.pk).roles == frozenset()


def test_user_create_page_creates_a_user_without_role(client_for, admin_user):
    response = client_for(admin_user).post(
        reverse("accounts:user_create"),
        {"email": "New.Person@ZeroMargin.example", "full_name": "New"},
    )
    person = User.objects.get(email="new.person@zeromargin.example")
    assert response.status_code == 302
    assert person.roles == frozenset() and not person.has_usable_password()
    assert AuditEvent.objects.filter(action="user.created", object_id=str(person.pk)).exists()


def test_user_create_page_shows_field_errors(client_for, admin_user):
    response = client_for(admin_user).post(
        reverse("accounts:user_create"), {"email": admin_user.email}
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_user_list_filters_by_role_and_search(client_for, admin_user, make_user):
    make_user(Role.AUDITOR, email="audrey@zeromargin.example")
    make_user(Role.DEVOPS, email="dev@zeromargin.example")
    client = client_for(admin_user)
    html = client.get(reverse("accounts:user_list"), {"role": "auditor"}).content.decode()
    assert "audrey@" in html and "dev@" not in html
    html = client.get(reverse("accounts:user_list"), {"q": "dev@"}).content.decode()
    assert "dev@" in html and "audrey@" not in html


def test_user_list_query_count_does_not_grow_with_users(client_for, admin_user, make_user):
    client = client_for(admin_user)
    make_user(Role.AUDITOR)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("accounts:user_list"))
    for _ in range(20):
        make_user(Role.DEVOPS, Role.MODEL_OWNER)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("accounts:user_list"))
    assert len(many) == len(few)


def test_deactivate_user_blocks_sign_in_and_audits(client_for, admin_user, make_user):
    person = make_user(Role.DEVOPS)
    client_for(admin_user).post(reverse("accounts:user_toggle_active", args=[person.pk]))
    assert not User.objects.get(pk=person.pk).is_active
    assert AuditEvent.objects.filter(action="user.deactivated", object_id=str(person.pk)).exists()


def test_admin_cannot_deactivate_themselves(client_for, admin_user):
    response = client_for(admin_user).post(
        reverse("accounts:user_toggle_active", args=[admin_user.pk]), follow=True
    )
    assert "cannot deactivate yourself" in response.content.decode()
    assert User.objects.get(pk=admin_user.pk).is_active

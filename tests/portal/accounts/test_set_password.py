"""No admin knows anyone's password: people an admin adds choose their own through a
one-time link e-mailed to them, and the Django admin offers no password form."""

import re

import pytest
from django.contrib.auth.password_validation import (
    password_validators_help_texts,
    validate_password,
)
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.accounts.services import user_password_set_by_operator
from portal.audit.models import AuditEvent
from portal.changes.configuration import password_login_allowed

pytestmark = pytest.mark.django_db


def _link(message) -> str:
    return re.search(r"https?://\S+/accounts/set-password/\S+/", message.body).group(0)


def test_user_create_with_a_password_is_refused(client_for, admin_user):
    """An admin typing a password for someone gets a 400 and no account."""
    response = client_for(admin_user).post(
        reverse("accounts:user_create"),
        {"email": "new@zeromargin.example", "password": "chosen-by-the-admin-1"},
    )
    assert response.status_code == 400
    assert "Admins do not choose passwords" in response.content.decode()
    assert not User.objects.filter(email="new@zeromargin.example").exists()


def test_user_create_emails_a_one_time_set_password_link(
    client_for, admin_user, django_capture_on_commit_callbacks, client
):
    """The link goes to the person only (not through the outbox admins can read),
    sets the password once, and is dead afterwards."""
    with django_capture_on_commit_callbacks(execute=True):
        client_for(admin_user).post(
            reverse("accounts:user_create"), {"email": "new@zeromargin.example"}
        )
    person = User.objects.get(email="new@zeromargin.example")
    assert not person.has_usable_password()
    [message] = mail.outbox
    assert message.to == ["new@zeromargin.example"]
    link = _link(message).split("://", 1)[1].split("/", 1)[1]
    client.logout()

    page = client.get("/" + link, follow=True)
    assert "Choose your password" in page.content.decode()
    form_url = page.redirect_chain[-1][0]
    client.post(
        form_url,
        {"new_password1": "a-long-secret-of-mine", "new_password2": "a-long-secret-of-mine"},
    )
    person.refresh_from_db()
    assert person.check_password("a-long-secret-of-mine")
    again = client.get("/" + link, follow=True).content.decode()
    assert "expired or was already used" in again
    event = AuditEvent.objects.get(action="user.created", object_id=str(person.pk))
    assert event.payload_record.data["set_password_link"] is True


def test_no_set_password_link_when_password_sign_in_is_off(
    settings, client_for, admin_user, django_capture_on_commit_callbacks
):
    settings.PASSWORD_LOGIN_ENABLED = False
    assert not password_login_allowed()
    with django_capture_on_commit_callbacks(execute=True):
        client_for(admin_user).post(
            reverse("accounts:user_create"), {"email": "sso@zeromargin.example"}
        )
    assert User.objects.filter(email="sso@zeromargin.example").exists()
    assert mail.outbox == []


def test_django_admin_offers_no_password_change_for_users(client_for, make_user):
    """A superuser admin cannot set someone's password (and so sign in as them)."""
    admin = make_user(Role.PORTAL_ADMIN, is_staff=True, is_superuser=True)
    person = make_user(Role.DEVOPS)
    client = client_for(admin)
    page = client.get(f"/django-admin/accounts/user/{person.pk}/change/").content.decode()
    assert person.email in page
    assert "../password/" not in page and f"user/{person.pk}/password/" not in page
    assert "pbkdf2" not in page
    assert client.get(f"/django-admin/accounts/user/{person.pk}/password/").status_code in (
        302,
        404,
    )
    assert client.get("/django-admin/accounts/user/add/").status_code == 403


def _set_password_form(client_for, admin_user, client, django_capture_on_commit_callbacks):
    """The URL of the set-password form a newly added person reaches from their link."""
    with django_capture_on_commit_callbacks(execute=True):
        client_for(admin_user).post(
            reverse("accounts:user_create"), {"email": "new@zeromargin.example"}
        )
    [message] = mail.outbox
    client.logout()
    page = client.get("/" + _link(message).split("://", 1)[1].split("/", 1)[1], follow=True)
    return page.redirect_chain[-1][0], page.content.decode()


def test_set_password_longer_than_128_characters_is_a_field_error(
    client_for, admin_user, client, django_capture_on_commit_callbacks
):
    """129 characters: the form says so next to the field, nothing is set, and the
    one-time link still works; 128 characters are accepted. The browser is told the
    limit too."""
    form_url, page = _set_password_form(
        client_for, admin_user, client, django_capture_on_commit_callbacks
    )
    assert page.count('maxlength="128"') == 2
    too_long = "correct horse battery staple " * 4 + "x" * 13
    assert len(too_long) == 129
    response = client.post(form_url, {"new_password1": too_long, "new_password2": too_long})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "at most 128 characters (it has 129)" in errors["new_password1"][0]
    assert "at most 128 characters (it has 129)" in errors["new_password2"][0]
    person = User.objects.get(email="new@zeromargin.example")
    assert not person.has_usable_password()
    longest = too_long[:128]
    client.post(form_url, {"new_password1": longest, "new_password2": longest})
    person.refresh_from_db()
    assert person.check_password(longest)


def test_password_validators_refuse_a_password_over_128_characters():
    """Every `validate_password` (any form that sets a password) has the cap, with its
    own code, and the help text says it."""
    validate_password("a sound passphrase " * 6 + "y" * 14)  # 128: fine
    with pytest.raises(ValidationError) as refused:
        validate_password("a sound passphrase " * 6 + "y" * 15)
    assert [e.code for e in refused.value.error_list] == ["password_too_long"]
    assert "at most 128 characters" in " ".join(password_validators_help_texts())


def test_operator_password_over_128_characters_is_refused(make_user):
    """The operator's path (the demo's logins) has the cap too: a field error, no
    password set, nothing audited."""
    person = make_user(Role.DEVOPS)
    with pytest.raises(ValidationError) as refused:
        user_password_set_by_operator(user=person, password="p" * 129, operator="ops")
    assert "at most 128 characters" in refused.value.message_dict["password"][0]
    person.refresh_from_db()
    assert not person.check_password("p" * 129)
    assert not AuditEvent.objects.filter(action="user.password_set_by_operator").exists()

"""Password sign-in: success, failure audited, rate-limited, and switchable off."""

import pytest
from django.test import override_settings
from django.urls import reverse

from portal.audit.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, email: str, password: str):
    return client.post(reverse("accounts:login"), {"username": email, "password": password})


def test_login_with_password_signs_in_and_audits(client, make_user):
    person = make_user()
    response = _login(client, person.email, DEFAULT_PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("ui:home")
    event = AuditEvent.objects.get(action="login.succeeded")
    assert event.actor_id == str(person.pk)
    assert event.payload_record.data == {"method": "password"}


def test_login_failure_is_audited_without_the_username(client, make_user):
    person = make_user()
    response = _login(client, person.email, "wrong password")
    assert response.status_code == 200
    assert "Please enter a correct" in response.content.decode()
    event = AuditEvent.objects.get(action="login.failed")
    assert person.email not in str(event.payload_record.data)
    assert len(event.payload_record.data["username_digest"]) == 16


@override_settings(AXES_FAILURE_LIMIT=3)
def test_login_failures_are_rate_limited(client, make_user):
    person = make_user()
    for _ in range(3):
        _login(client, person.email, "wrong password")
    response = _login(client, person.email, DEFAULT_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.locked_out").exists()


def test_inactive_user_cannot_sign_in(client, make_user):
    person = make_user(is_active=False)
    _login(client, person.email, DEFAULT_PASSWORD)
    assert "_auth_user_id" not in client.session


@override_settings(PASSWORD_LOGIN_ENABLED=False)
def test_password_login_switched_off_refuses_the_form(client, make_user):
    person = make_user()
    response = _login(client, person.email, DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    page = client.get(reverse("accounts:login")).content.decode()
    assert "Password sign-in is switched off" in page
    assert 'name="password"' not in page


def test_logout_is_audited(client, make_user):
    person = make_user()
    _login(client, person.email, DEFAULT_PASSWORD)
    client.post(reverse("accounts:logout"))
    assert AuditEvent.objects.filter(action="logout", object_id=str(person.pk)).exists()
    assert client.get("/").status_code == 302


def test_django_admin_login_goes_through_the_portal_login(client):
    response = client.get("/django-admin/login/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))

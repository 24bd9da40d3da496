"""Google SSO end to end, against a local server standing in for Google's endpoints."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import override_settings
from django.urls import reverse

from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.audit.models import AuditEvent
from tests.fakes.google_oauth import FakeGoogle

pytestmark = pytest.mark.django_db


@pytest.fixture()
def google():
    fake = FakeGoogle().start()
    with override_settings(**fake.settings()):
        yield fake
    fake.stop()


def _sign_in_with_google(client, google: FakeGoogle):
    """Follow the redirects a browser would: portal -> Google -> portal callback."""
    start = client.post("/login/google-oauth2/")
    assert start.status_code == 302
    authorize = start["Location"]
    assert authorize.startswith(google.base_url + "/o/oauth2/auth")
    at_google = requests.get(authorize, allow_redirects=False, timeout=5)
    assert at_google.status_code == 302
    callback = urlsplit(at_google.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def test_first_sso_sign_in_creates_a_user_with_no_role(client, google):
    response = _sign_in_with_google(client, google)
    assert response.status_code == 302 and response["Location"] == reverse("ui:home")
    user = User.objects.get(email="new.person@zeromargin.example")
    assert user.roles == frozenset()
    assert not user.has_usable_password()
    assert client.session["_auth_user_id"] == str(user.pk)
    assert AuditEvent.objects.filter(action="user.created", object_id=str(user.pk)).exists()
    login = AuditEvent.objects.get(action="login.succeeded", object_id=str(user.pk))
    assert login.payload_record.data == {"method": "google-sso"}


def test_sso_asks_google_for_the_workspace_domain_and_trades_the_code(client, google):
    _sign_in_with_google(client, google)
    method, path, query, _headers = google.requests[0]
    assert (method, path) == ("GET", "/o/oauth2/auth")
    assert query["hd"] == "zeromargin.example"
    assert set(query["scope"].split()) >= {"openid", "email"}
    token_call = next(r for r in google.requests if r[1] == "/token")
    assert token_call[2]["grant_type"] == "authorization_code"
    assert token_call[2]["redirect_uri"] == "http://testserver/complete/google-oauth2/"


def test_sso_links_to_an_account_an_admin_created(client, google, make_user):
    existing = make_user(Role.AUDITOR, email="new.person@zeromargin.example")
    _sign_in_with_google(client, google)
    assert client.session["_auth_user_id"] == str(existing.pk)
    assert User.objects.filter(email="new.person@zeromargin.example").count() == 1


def test_sso_refuses_an_address_outside_the_domain(client, google):
    google.claims.update(email="someone@gmail.com", hd=None)
    response = _sign_in_with_google(client, google)
    assert "_auth_user_id" not in client.session
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not User.objects.filter(email="someone@gmail.com").exists()


def test_sso_refuses_a_consumer_account_claiming_the_domain(client, google):
    google.claims.update(hd=None)  # address on our domain, but not a Workspace account
    _sign_in_with_google(client, google)
    assert "_auth_user_id" not in client.session
    assert not User.objects.exists()


def test_sso_refuses_an_unverified_address(client, google):
    google.claims.update(email_verified=False)
    _sign_in_with_google(client, google)
    assert "_auth_user_id" not in client.session


def test_sso_refuses_a_forged_state(client, google):
    start = client.post("/login/google-oauth2/")
    at_google = requests.get(start["Location"], allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(at_google.headers["Location"]).query)["code"][0]
    client.get(f"/complete/google-oauth2/?state=forged&code={code}")
    assert "_auth_user_id" not in client.session


def test_sso_start_refused_when_not_configured(client):
    response = client.post("/login/google-oauth2/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_offers_google_when_configured(client, google):
    html = client.get(reverse("accounts:login")).content.decode()
    assert "Sign in with Google (zeromargin.example)" in html

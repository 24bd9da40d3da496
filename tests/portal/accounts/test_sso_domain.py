"""Google SSO admits one Workspace domain, as production settings build it from the
environment, and refuses another organisation's accounts end to end over the stand-in."""

import json

import pytest

from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.accounts.services import user_create
from portal.audit.actors import Actor
from tests.portal.accounts.test_sso import _sign_in_with_google, google  # noqa: F401
from tests.portal.settings.test_settings import PRODUCTION, _manage

pytestmark = pytest.mark.django_db

PRINT_SSO_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'domains': s.SOCIAL_AUTH_GOOGLE_OAUTH2_WHITELISTED_DOMAINS,"
    "'extra': s.SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS,"
    "'domain': s.GOOGLE_WORKSPACE_DOMAIN, 'sso': s.SSO_ENABLED}))"
)


def test_production_settings_restrict_sso_to_the_workspace_domain_from_the_environment():
    """Run the settings module as production does: the allowed domains and the `hd`
    argument both come from GOOGLE_WORKSPACE_DOMAIN."""
    result = _manage(
        "shell",
        "-c",
        PRINT_SSO_SETTINGS,
        **PRODUCTION,
        GOOGLE_OAUTH2_KEY="client-id",
        GOOGLE_OAUTH2_SECRET="client-secret",
        GOOGLE_WORKSPACE_DOMAIN="ZeroMargin.example",
    )
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout.strip().splitlines()[-1])
    assert built == {
        "domains": ["zeromargin.example"],
        "extra": {"hd": "zeromargin.example"},
        "domain": "zeromargin.example",
        "sso": True,
    }


def test_production_settings_refuse_sso_without_a_workspace_domain():
    result = _manage(
        "check", **PRODUCTION, GOOGLE_OAUTH2_KEY="client-id", GOOGLE_OAUTH2_SECRET="secret"
    )
    assert result.returncode != 0
    assert "GOOGLE_WORKSPACE_DOMAIN must be set" in result.stderr


def test_sso_refuses_another_organisations_workspace_account(client, google):  # noqa: F811
    """A real Workspace account of another organisation (its own `hd`) gets no account."""
    google.claims.update(email="mallory@competitor.example", hd="competitor.example")
    response = _sign_in_with_google(client, google)
    assert "_auth_user_id" not in client.session
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not User.objects.filter(email="mallory@competitor.example").exists()


def test_sso_refuses_a_foreign_hd_even_with_an_address_on_our_domain(client, google):  # noqa: F811
    google.claims.update(hd="competitor.example")
    _sign_in_with_google(client, google)
    assert "_auth_user_id" not in client.session
    assert not User.objects.exists()


def test_sso_links_an_address_google_sends_in_another_case(client, google, make_user):  # noqa: F811
    existing = make_user(Role.AUDITOR, email="new.person@zeromargin.example")
    google.claims.update(email="New.Person@ZeroMargin.example")
    _sign_in_with_google(client, google)
    assert client.session["_auth_user_id"] == str(existing.pk)
    assert User.objects.count() == 1


def test_sso_never_signs_in_a_machine_account(client, google):  # noqa: F811
    user_create(email="new.person@zeromargin.example", actor=Actor.system("t"), machine=True)
    _sign_in_with_google(client, google)
    assert "_auth_user_id" not in client.session

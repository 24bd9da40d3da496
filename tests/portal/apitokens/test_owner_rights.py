"""A token never does what its owner may not do now.

Scopes offered and accepted at creation are limited by the owner's roles (portal form,
service, `manage.py apitoken create`); every request checks the owner's current roles
and object rights as their session would be checked; a deactivated owner's or a
role-less owner's tokens do nothing. Tokens issued before these limits existed are
built here directly as rows, as they sit in the database.
"""

import io
import re
import secrets

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver

from governance.models import RegisteredModel
from governance.training.models import PipelineRun
from portal.accounts.choices import Role
from portal.accounts.services import role_revoke, user_set_active
from portal.apitokens.choices import Scope
from portal.apitokens.models import ApiToken, token_hash
from portal.apitokens.scopes import endpoint_rules, scopes_allowed_for, scopes_in_use
from portal.apitokens.services import apitoken_create
from tests.governance.conftest import registration_body

pytestmark = pytest.mark.django_db

BEYOND_DEVOPS = ["pipelines:write", "registry:write", "reviews:write"]


def _row_token(owner, scopes) -> str:
    """A token as an older portal issued it, without the owner check: its secret."""
    prefix = secrets.token_hex(4)
    secret = f"gp_{prefix}_{secrets.token_urlsafe(32)}"
    ApiToken.objects.create(
        name="old", owner=owner, scopes=list(scopes), prefix=prefix, secret_hash=token_hash(secret)
    )
    return secret


def _bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_apitoken_create_refuses_scopes_beyond_the_owners_roles(devops):
    """A DevOps user cannot give a token the writes their session is refused."""
    with pytest.raises(ValidationError) as excinfo:
        apitoken_create(
            name="ci",
            owner=devops,
            scopes=[*BEYOND_DEVOPS, "gates:read"],
            expires_at=None,
            actor=devops.audit_actor(),
        )
    message = " ".join(excinfo.value.message_dict["scopes"])
    assert all(scope in message for scope in BEYOND_DEVOPS)
    assert "gates:read" not in message
    assert not ApiToken.objects.exists()


def test_token_form_offers_only_what_the_owners_roles_allow(client_for, devops):
    """The portal's form lists the scopes DevOps may use, and refuses the others (400)."""
    client = client_for(devops)
    page = client.get("/manage/tokens/").content.decode()
    offered = set(re.findall(r'name="scopes" value="([^"]+)"', page))
    assert offered == {
        "registry:read",
        "reviews:read",
        "gates:read",
        "pipelines:read",
        "rollouts:read",
        "rollouts:write",
    }
    response = client.post("/manage/tokens/new", {"name": "ci", "scopes": BEYOND_DEVOPS})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_apitoken_command_refuses_scopes_beyond_the_owners_roles(devops):
    """`manage.py apitoken create --owner` applies the same limit as the portal."""
    with pytest.raises(CommandError, match="registry:write"):
        call_command(
            "apitoken",
            "create",
            "--name",
            "ci",
            "--owner",
            devops.email,
            "--scopes",
            "registry:write,gates:read",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert not ApiToken.objects.exists()


def test_devops_token_is_refused_what_the_devops_session_is_refused(client, devops):
    """The reported case: an old DevOps token with three write scopes opens no review,
    starts no run and registers no version (403 each, as for the session)."""
    secret = _row_token(devops, BEYOND_DEVOPS)
    calls = [
        (
            "/api/v1/reviews",
            {"model": "demand-forecasting", "version": "1.0.0", "target": "staging"},
        ),
        ("/api/v1/pipelines/runs", {"model": "demand-forecasting", "reason": "retrain"}),
        ("/api/v1/models/demand-forecasting/versions", registration_body("9.0.0")),
    ]
    for url, body in calls:
        response = client.post(url, body, content_type="application/json", **_bearer(secret))
        assert response.status_code == 403, (url, response.content)
        assert "owner" in response.json()["error"]
    assert not PipelineRun.objects.exists()


def test_pipelines_token_cannot_start_runs_of_another_owners_model(client, make_user):
    """A model owner's pipelines:write token retrains their model, not someone else's."""
    olive, other = make_user(Role.MODEL_OWNER), make_user(Role.MODEL_OWNER)
    RegisteredModel.objects.filter(slug="demand-forecasting").update(owner=olive)
    RegisteredModel.objects.filter(slug="customer-segmentation").update(owner=other)
    secret = apitoken_create(
        name="ci",
        owner=olive,
        scopes=["pipelines:write"],
        expires_at=None,
        actor=olive.audit_actor(),
    ).secret
    refused = client.post(
        "/api/v1/pipelines/runs",
        {"model": "customer-segmentation", "reason": "not mine"},
        content_type="application/json",
        **_bearer(secret),
    )
    assert refused.status_code == 403
    assert not PipelineRun.objects.exists()


def test_token_stops_reading_reviews_once_every_role_of_its_owner_is_revoked(
    client, make_user, admin_user
):
    """The token was fine when issued; after the owner's last role goes it reads nothing."""
    person = make_user(Role.AUDITOR)
    secret = apitoken_create(
        name="ci",
        owner=person,
        scopes=["reviews:read", "gates:read"],
        expires_at=None,
        actor=person.audit_actor(),
    ).secret
    url = "/api/v1/gates/demand-forecasting/1.0.0/staging"
    assert client.get(url, **_bearer(secret)).status_code == 404  # allowed: no such version
    role_revoke(user=person, role=Role.AUDITOR, revoked_by=admin_user)
    for path in ("/api/v1/reviews/1", url, "/api/v1/whoami"):
        response = client.get(path, **_bearer(secret))
        assert response.status_code == 403, path
        assert "holds no role" in response.json()["error"]


def test_deactivated_owners_token_is_refused(client, make_user, admin_user):
    """Switching a person off switches their tokens off (401, as an unknown token)."""
    person = make_user(Role.AUDITOR)
    secret = apitoken_create(
        name="ci",
        owner=person,
        scopes=["gates:read"],
        expires_at=None,
        actor=person.audit_actor(),
    ).secret
    user_set_active(user=person, active=False, changed_by=admin_user)
    response = client.get("/api/v1/whoami", **_bearer(secret))
    assert response.status_code == 401


def test_token_request_reads_the_owners_roles_with_the_token(
    client, make_user, django_assert_num_queries
):
    """Token and roles in one query on PostgreSQL (two on SQLite), however many roles;
    no query per role check."""
    person = make_user(Role.AUDITOR, Role.DEVOPS, Role.MODEL_OWNER)
    secret = apitoken_create(
        name="ci",
        owner=person,
        scopes=["gates:read"],
        expires_at=None,
        actor=person.audit_actor(),
    ).secret
    client.get("/api/v1/whoami", **_bearer(secret))  # records last use
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
        assert client.get("/api/v1/whoami", **_bearer(secret)).status_code == 200


# --- every API route, and the scopes behind them ---------------------------------------


def _api_routes() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return [r for r in walk(get_resolver().url_patterns) if r.startswith("api/")]


API_ROUTES = _api_routes()
ARGUMENTS = {"int": "1", "slug": "demand-forecasting", "str": "1.0.0"}


def test_the_walk_finds_the_api_routes():
    assert len(API_ROUTES) >= 10
    assert "api/v1/pipelines/runs" in API_ROUTES


@pytest.mark.parametrize("route", API_ROUTES)
def test_token_of_a_role_less_owner_with_every_scope_is_refused(client, outsider, route):
    """Every API route refuses a token carrying every scope when its owner holds no role."""
    secret = _row_token(outsider, Scope.values)
    path = "/" + re.sub(r"<(\w+):(\w+)>", lambda m: ARGUMENTS.get(m.group(1), "x"), route)
    for method in ("get", "post"):
        response = getattr(client, method)(path, {}, **_bearer(secret))
        assert response.status_code in (403, 405), (method, path, response.status_code)
        # Every error under /api/ is JSON, the schema's and Swagger UI's too.
        if response.status_code == 403:
            assert response["Content-Type"].startswith("application/json")
            assert b"holds no role" in response.content, (method, path)


def test_every_route_scope_is_a_known_scope_and_every_offered_scope_has_a_route():
    """Offered scopes are exactly those some endpoint requires: none with nothing behind it
    (monitoring:write had none); audit:read is offered since GET /api/v1/audit/events."""
    required = {scope for rule in endpoint_rules() for scope in rule.scopes}
    assert required <= set(Scope.values)
    assert set(scopes_in_use()) == required
    assert "monitoring:write" not in scopes_in_use()
    assert required >= {
        "registry:read",
        "registry:write",
        "gates:read",
        "pipelines:write",
        "audit:read",
    }
    assert all(rule.roles for rule in endpoint_rules()), "a scoped endpoint without a role check"


def test_scopes_allowed_follow_the_roles_of_the_endpoints():
    assert scopes_allowed_for(frozenset()) == []
    assert "registry:write" in scopes_allowed_for({Role.MODEL_OWNER})
    assert "registry:write" not in scopes_allowed_for({Role.DEVOPS, Role.AUDITOR})
    # Shipping (starting and rolling back rollouts) is DevOps' work, not the lead's; the
    # audit trail is read by auditors and portal admins only.
    assert set(scopes_allowed_for({Role.DATA_SCIENCE_LEAD})) == set(scopes_in_use()) - {
        "rollouts:write",
        "audit:read",
    }
    assert "rollouts:write" in scopes_allowed_for({Role.DEVOPS})
    assert "audit:read" in scopes_allowed_for({Role.AUDITOR})
    assert "audit:read" in scopes_allowed_for({Role.PORTAL_ADMIN})


def test_apitoken_create_refuses_a_scope_no_endpoint_uses(make_user):
    with pytest.raises(ValidationError, match="Unknown scopes: monitoring:write"):
        lead = make_user(Role.DATA_SCIENCE_LEAD)
        apitoken_create(
            name="ci",
            owner=lead,
            scopes=["monitoring:write"],
            expires_at=None,
            actor=lead.audit_actor(),
        )

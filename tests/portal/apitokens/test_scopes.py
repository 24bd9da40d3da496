"""The scope permission: a token must carry every scope the endpoint requires."""

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from portal.apitokens.permissions import HasRequiredScopes
from portal.apitokens.services import apitoken_create

pytestmark = pytest.mark.django_db


class GateView:
    required_scopes = ("gates:read",)


class RegistryView:
    required_scopes = ("registry:write",)
    required_roles = ("model_owner",)


def _request(user, auth):
    request = Request(RequestFactory().get("/api/v1/x"))
    request.user, request.auth = user, auth
    return request


def test_token_with_the_scope_is_allowed(devops):
    issued = apitoken_create(
        name="ci", owner=devops, scopes=["gates:read"], expires_at=None, actor=devops.audit_actor()
    )
    assert HasRequiredScopes().has_permission(_request(devops, issued.token), GateView())


def test_token_without_the_scope_is_refused_and_told_which(devops):
    issued = apitoken_create(
        name="ci", owner=devops, scopes=["gates:read"], expires_at=None, actor=devops.audit_actor()
    )
    permission = HasRequiredScopes()
    assert not permission.has_permission(_request(devops, issued.token), RegistryView())
    assert "registry:write" in permission.message


def test_session_user_is_judged_by_roles(make_user):
    permission = HasRequiredScopes()
    assert permission.has_permission(_request(make_user("model_owner"), None), RegistryView())
    assert not permission.has_permission(_request(make_user("auditor"), None), RegistryView())

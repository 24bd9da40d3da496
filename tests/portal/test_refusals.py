"""Every route of the portal refuses callers it was not built for.

Walks the whole URL map, so a view added later without a permission check fails here:
anonymous callers are sent to sign in (pages) or get a JSON 401 (API); a signed-in
person with no role gets 403 everywhere but the few pages meant for everyone.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# Open to anyone, by design: sign-in, the one-time set-password link (its token is the
# credential), probes and scrapes, the published keys, the Pub/Sub push (it checks
# Google's OIDC token itself), and social-auth's own routes.
PUBLIC = {
    "accounts/login/",
    "accounts/logout/",
    "accounts/set-password/<uidb64>/<token>/",
    "healthz",
    "readyz",
    "metrics",
    ".well-known/jwks.json",
    "hooks/clouddeploy",
    # GDPR requests: data subjects have no account; the forms verify them by e-mail code
    # and the status page takes a signed, expiring link.
    "privacy/",
    "privacy/requests/new/",
    "privacy/requests/<uuid:public_id>/verify/",
    "privacy/requests/<uuid:public_id>/resend/",
    "privacy/requests/status/<str:token>/",
    "privacy/requests/package/<str:token>/",
}
PUBLIC_PREFIXES = ("login/", "complete/", "idp-launch/", "app-launch/", "disconnect/")
# What a signed-in person with no role may still open.
EVERYONE_SIGNED_IN = {"", "monitoring/", "api/schema/", "api/docs/", "api/v1/whoami"}
ARGUMENTS = {
    "int": "1",
    "slug": "demand-forecasting",
    "str": "1.0.0",
    "uuid": "00000000-0000-4000-8000-000000000001",
}


def _routes() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return [r for r in walk(get_resolver().url_patterns) if not r.startswith("django-admin")]


def _concrete(route: str) -> str:
    path = re.sub(r"<(\w+):(\w+)>", lambda m: ARGUMENTS.get(m.group(1), "x"), route)
    return "/" + path.replace("card/export.1.0.0", "card/export.json")


GUARDED = [
    r
    for r in _routes()
    if r not in PUBLIC and not r.startswith(PUBLIC_PREFIXES) and r not in EVERYONE_SIGNED_IN
]


def test_the_walk_finds_the_routes():
    assert len(GUARDED) > 50


@pytest.mark.parametrize("route", GUARDED)
def test_anonymous_callers_are_refused(client, route):
    path = _concrete(route)
    for response in (client.get(path), client.post(path, {})):
        if path.startswith(("/api/", "/hooks/")):
            assert response.status_code in (401, 403), (path, response.status_code)
            assert "error" in response.json()
        else:
            assert response.status_code in (302, 405), (path, response.status_code)
            if response.status_code == 302:
                assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("route", GUARDED)
def test_people_without_a_role_are_refused(client_for, outsider, route):
    client = client_for(outsider)
    path = _concrete(route)
    statuses = {client.get(path).status_code, client.post(path, {}).status_code}
    assert statuses <= {403, 405}, (path, statuses)
    assert 403 in statuses, (path, statuses)

"""Every state-changing route records the refusals it answers: walks the whole URL
map, so a view added later is covered without remembering to record anything."""

import pytest

from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.security.models import RefusalWindow
from tests.portal.test_refusals import GUARDED, _concrete

pytestmark = pytest.mark.django_db

API_ROUTES = [route for route in GUARDED if route.startswith("api/")]


@pytest.mark.parametrize("route", GUARDED)
def test_refused_post_by_a_signed_in_person_is_recorded(client_for, outsider, route):
    """A person without the role posting to any guarded route: the 403 is counted
    against them, and the window's first refusal is an audit event."""
    response = client_for(outsider).post(_concrete(route), {})

    if response.status_code == 405:  # the route takes no writes
        assert not RefusalWindow.objects.exists()
        return
    assert response.status_code == 403
    window = RefusalWindow.objects.select_related("event").get()
    assert (window.source, window.count) == (f"user:{outsider.pk}", 1)
    assert (window.event.action, window.event.actor_id) == (
        "security.access_refused",
        str(outsider.pk),
    )


def test_the_walk_finds_api_routes():
    assert len(API_ROUTES) >= 5


@pytest.mark.parametrize("route", API_ROUTES)
def test_refused_post_by_a_token_is_recorded(client, make_user, route):
    """A token that may only ask gates, posting to any API route: where it is refused,
    the refusal is counted against the token."""
    token = apitoken_create(
        name="reader",
        owner=make_user(Role.PORTAL_ADMIN),
        scopes=["gates:read"],
        expires_at=None,
        actor=Actor.system("tests"),
    )

    response = client.post(_concrete(route), {}, HTTP_AUTHORIZATION=f"Bearer {token.secret}")

    if response.status_code == 405:
        assert not RefusalWindow.objects.exists()
        return
    assert response.status_code == 403, response.content
    window = RefusalWindow.objects.get()
    assert (window.source, window.count) == (f"token:{token.token.prefix}", 1)


@pytest.mark.parametrize("route", GUARDED)
def test_refused_get_by_a_signed_in_person_is_recorded(client_for, outsider, route):
    """Reads are refusals too: a person without the role opening any guarded route is
    counted against them, with the method in the window's first event."""
    response = client_for(outsider).get(_concrete(route))

    if response.status_code == 405:  # the route takes no reads
        return
    assert response.status_code == 403
    window = RefusalWindow.objects.select_related("event").get()
    assert (window.source, window.count) == (f"user:{outsider.pk}", 1)
    assert window.event.payload_record.data["method"] == "GET"

"""Behind a load balancer, sign-in lockouts and the audit trail use the real client's
address: the hop the trusted proxy appended to X-Forwarded-For, never one the client sent."""

import pytest
from django.test import override_settings
from django.urls import reverse

from portal.audit.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

BALANCER = "10.0.0.2"
CLIENT_A, CLIENT_B = "198.51.100.7", "203.0.113.9"


def _login(client, email: str, password: str, forwarded_for: str):
    # The load balancer connects (REMOTE_ADDR) and appends the address it saw.
    return client.post(
        reverse("accounts:login"),
        {"username": email, "password": password},
        REMOTE_ADDR=BALANCER,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


@override_settings(TRUSTED_PROXY_COUNT=1, AXES_FAILURE_LIMIT=5)
def test_lockout_behind_one_proxy_locks_the_failing_client_only(client, make_user):
    person = make_user()
    for _ in range(5):
        _login(client, person.email, "wrong password", CLIENT_A)
    locked = _login(client, person.email, DEFAULT_PASSWORD, CLIENT_A)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    events = AuditEvent.objects.filter(action__in=["login.failed", "login.locked_out"])
    assert {event.action for event in events} == {"login.failed", "login.locked_out"}
    assert {event.payload_record.client_ip for event in events} == {CLIENT_A}

    other = _login(client, person.email, DEFAULT_PASSWORD, CLIENT_B)
    assert other.status_code == 302
    assert client.session["_auth_user_id"] == str(person.pk)


@override_settings(TRUSTED_PROXY_COUNT=1, AXES_FAILURE_LIMIT=5)
def test_lockout_ignores_a_forwarded_hop_the_client_made_up(client, make_user):
    """A locked client prepending another address to X-Forwarded-For is still itself."""
    person = make_user()
    for index in range(5):
        # a different made-up hop each time: none of them may spread the failures
        _login(client, person.email, "wrong password", f"192.0.2.{index}, {CLIENT_A}")
    spoofed = _login(client, person.email, DEFAULT_PASSWORD, f"{CLIENT_B}, {CLIENT_A}")
    assert spoofed.status_code == 429
    assert "_auth_user_id" not in client.session
    assert _login(client, person.email, DEFAULT_PASSWORD, CLIENT_B).status_code == 302


@override_settings(TRUSTED_PROXY_COUNT=0, AXES_FAILURE_LIMIT=5)
def test_without_a_trusted_proxy_forwarded_for_is_ignored(client, make_user):
    person = make_user()
    _login(client, person.email, "wrong password", CLIENT_A)
    event = AuditEvent.objects.get(action="login.failed")
    assert event.payload_record.client_ip == BALANCER

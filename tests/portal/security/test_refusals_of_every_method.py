"""Refused reads count as refusals too, domain refusals (four eyes, rollouts) are
counted through the same windows once each, and an anonymous 401 storm from many
addresses stays a bounded number of ledger rows."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from portal.accounts.choices import Role
from portal.accounts.services import role_grant
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.changes.services import OperatorSignoff, change_approve_by_operators
from portal.security.models import RefusalWindow
from portal.security.services import ANONYMOUS_OVERFLOW_SOURCE

pytestmark = pytest.mark.django_db


def _token(owner, scopes):
    return apitoken_create(
        name="t", owner=owner, scopes=scopes, expires_at=None, actor=Actor.system("tests")
    )


def test_get_by_a_token_without_audit_read_is_counted(client, make_user):
    issued = _token(make_user(Role.AUDITOR), ["gates:read"])
    for _ in range(3):
        response = client.get("/api/v1/audit/events", HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        assert response.status_code == 403
    window = RefusalWindow.objects.get()
    assert (window.source, window.count) == (f"token:{issued.token.prefix}", 3)
    assert window.event.payload_record.data["method"] == "GET"


def test_get_by_a_role_less_person_on_the_users_page_is_counted(client_for, outsider):
    response = client_for(outsider).get("/manage/users/")
    assert response.status_code == 403
    window = RefusalWindow.objects.get()
    assert (window.kind, window.source, window.count) == (
        "access.permission_denied",
        f"user:{outsider.pk}",
        1,
    )
    assert window.event.action == "security.access_refused"


@pytest.mark.parametrize("method", ["get", "head", "options", "post"])
def test_invalid_bearer_token_is_counted_for_every_method(client, method):
    response = getattr(client, method)(
        "/api/v1/audit/events", HTTP_AUTHORIZATION="Bearer pgp_not-a-token"
    )
    assert response.status_code == 401
    window = RefusalWindow.objects.get()
    assert window.source == "ip:127.0.0.1"
    assert window.kind.startswith("access.")


def test_anonymous_storm_from_many_addresses_is_folded_past_the_cap(client, settings):
    """Each address opens its own window (one ledger row) until the cap; after it the
    rest are counted together under ip:* (one more row). Nothing goes uncounted."""
    settings.SECURITY_ANONYMOUS_WINDOWS_PER_KIND = 3
    addresses = [f"203.0.113.{n}" for n in range(1, 11)]
    for address in addresses:
        for _ in range(2):
            assert client.get("/api/v1/whoami", REMOTE_ADDR=address).status_code == 401
    windows = {w.source: w.count for w in RefusalWindow.objects.all()}
    assert windows == {
        "ip:203.0.113.1": 2,
        "ip:203.0.113.2": 2,
        "ip:203.0.113.3": 2,
        ANONYMOUS_OVERFLOW_SOURCE: 14,
    }
    assert AuditEvent.objects.filter(action="security.access_refused").count() == 4


def test_people_are_never_folded_into_the_overflow(client_for, make_user, settings):
    settings.SECURITY_ANONYMOUS_WINDOWS_PER_KIND = 1
    people = [make_user() for _ in range(3)]
    for person in people:
        client_for(person).get("/manage/users/")
    assert sorted(RefusalWindow.objects.values_list("source", flat=True)) == sorted(
        f"user:{p.pk}" for p in people
    )


def test_self_approval_of_a_change_through_the_api_is_counted_once(make_user, outsider):
    """A 400 that a rule decided (four eyes), not bad input: counted as
    domain.four_eyes, and not a second time by the middleware."""
    admin = make_user(Role.PORTAL_ADMIN)
    change = role_grant(user=outsider, role=Role.DEVOPS, granted_by=admin)
    api = APIClient()
    api.force_authenticate(admin)
    for _ in range(2):
        response = api.post(f"/api/v1/governance/changes/{change.pk}/approve", {}, format="json")
        assert response.status_code == 400
    window = RefusalWindow.objects.get()
    assert (window.kind, window.source, window.count) == (
        "domain.four_eyes",
        f"user:{admin.pk}",
        2,
    )
    assert window.event.action == "security.domain_refused"
    assert "another portal admin" in window.event.payload_record.data["reason"]


def test_operator_approving_their_own_proposal_is_counted(make_user, outsider):
    signoff = OperatorSignoff("alice", "first install")
    change = role_grant(
        user=outsider, role=Role.DEVOPS, granted_by=None, actor=signoff.actor(), reason="x"
    )
    with pytest.raises(ValidationError, match="proposed this"):
        change_approve_by_operators(change=change, operators=[signoff])
    window = RefusalWindow.objects.get()
    assert (window.kind, window.source) == ("domain.four_eyes", "system:operator:alice")


def test_refused_html_read_of_the_refusals_page_is_counted(client_for, make_user):
    person = make_user(Role.MODEL_OWNER)
    assert client_for(person).get("/audit/refusals/").status_code == 403
    assert RefusalWindow.objects.filter(source=f"user:{person.pk}").count() == 1

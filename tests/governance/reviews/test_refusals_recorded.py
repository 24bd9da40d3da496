"""Refused attempts at the review board's state-changing actions are security events:
each is counted, and the first of each (kind, person or token, window) is an audit
event saying who tried what and which rule refused it."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from governance.choices import Target
from governance.reviews.models import ReviewDecision
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from portal.security.models import RefusalWindow

pytestmark = pytest.mark.django_db

DSL = Role.DATA_SCIENCE_LEAD
REFUSED = "security.access_refused"
NOON = datetime(2026, 3, 2, 12, 0, 10, tzinfo=UTC)


def refused_events() -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=REFUSED).select_related("payload_record").order_by("pk")
    )


def test_self_approval_through_the_page_is_audited_once_and_counted(
    client_for, version, open_review, lead
):
    """The requester approving their own review: 403, one audit event naming the rule
    and the person, and a repeat in the same window only adds to the count."""
    review = open_review(version, Target.STAGING, requester=lead)
    client = client_for(lead)

    with time_machine.travel(NOON, tick=False):
        first = client.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})
        again = client.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})

    assert first.status_code == again.status_code == 403
    [event] = refused_events()
    assert (event.actor_type, event.actor_id) == ("user", str(lead.pk))
    assert (event.object_type, event.object_id) == ("route", "governance:review_decide")
    data = event.payload_record.data
    assert data["code"] == "self_approval"
    assert "You requested this review" in data["reason"]
    assert (data["method"], data["path"], data["status"]) == (
        "POST",
        f"/reviews/{review.pk}/decide/",
        403,
    )
    window = RefusalWindow.objects.get()
    assert (window.kind, window.source, window.count, window.event) == (
        "access.self_approval",
        f"user:{lead.pk}",
        2,
        event,
    )
    assert not ReviewDecision.objects.exists()


def test_auditor_approving_is_audited(client_for, version, open_review, auditor):
    """A person without a board role trying to decide (refused by the page's permission
    check) is recorded against that person."""
    review = open_review(version)

    response = client_for(auditor).post(
        f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL}
    )

    assert response.status_code == 403
    [event] = refused_events()
    assert (event.actor_type, event.actor_id) == ("user", str(auditor.pk))
    assert event.payload_record.data["code"] == "permission_denied"
    assert event.payload_record.data["reason"] == "Your roles do not allow this page."


def test_one_person_filling_two_role_slots_is_audited(client_for, make_user, version, open_review):
    """A member holding two board roles approves in one, then tries to approve in the
    other: refused as already decided, and recorded with that rule."""
    both = make_user(DSL, Role.DEVOPS)
    review = open_review(version)
    client = client_for(both)

    client.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})
    second = client.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": "devops"})

    assert second.status_code == 403
    [event] = refused_events()
    assert event.payload_record.data["code"] == "already_decided"
    assert ReviewDecision.objects.filter(reviewer=both).count() == 1


def test_deciding_in_a_role_one_does_not_hold_is_refused_and_audited(
    client_for, version, open_review, devops
):
    """A board member posting a role they do not hold is refused by the service's rule
    (403, not a malformed form) and recorded with it."""
    review = open_review(version)

    response = client_for(devops).post(
        f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL}
    )

    assert response.status_code == 403
    assert "a board role you hold" in response.content.decode()
    [event] = refused_events()
    assert (event.actor_id, event.payload_record.data["code"]) == (str(devops.pk), "role_not_held")
    assert not ReviewDecision.objects.exists()


def test_refusals_in_a_new_window_are_audited_again(client_for, version, open_review, lead):
    """The count is per window: the first refusal after the window ends is audited."""
    review = open_review(version, Target.STAGING, requester=lead)
    client = client_for(lead)
    body = {"verdict": "approve", "role": DSL}

    with time_machine.travel(NOON, tick=False):
        client.post(f"/reviews/{review.pk}/decide/", body)
    with time_machine.travel(NOON + timedelta(minutes=11), tick=False):
        client.post(f"/reviews/{review.pk}/decide/", body)
        client.post(f"/reviews/{review.pk}/decide/", body)

    assert len(refused_events()) == 2
    assert sorted(RefusalWindow.objects.values_list("count", flat=True)) == [1, 2]


def test_reading_a_page_one_may_not_see_is_a_security_event(client_for, outsider):
    """Refused reads are counted too (someone walking pages their roles do not open):
    one audit event for the window, the repeat only counted."""
    client = client_for(outsider)
    assert client.get("/reviews/").status_code == 403
    assert client.get("/reviews/").status_code == 403
    [event] = refused_events()
    assert event.payload_record.data["method"] == "GET"
    window = RefusalWindow.objects.get()
    assert (window.source, window.count) == (f"user:{outsider.pk}", 2)


def test_token_without_the_scope_opening_a_review_is_audited(client, api_token, version):
    """A token refused by the API's permission check is recorded against the token."""
    secret, token = api_token("gates:read")
    body = {"model": version.model.slug, "version": version.version, "target": "staging"}

    response = client.post(
        "/api/v1/reviews",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )

    assert response.status_code == 403
    assert response.json()["fields"] == {}
    [event] = refused_events()
    assert (event.actor_type, event.actor_id) == ("token", token.prefix)
    assert event.payload_record.data["code"] == "permission_denied"
    assert "reviews:write" in event.payload_record.data["reason"]
    assert RefusalWindow.objects.get().source == f"token:{token.prefix}"


def test_anonymous_api_writes_are_counted_per_address(client, version):
    """Unauthenticated writes to the API are counted against the client address: many
    of them write one audit event."""
    body = {"model": version.model.slug, "version": version.version, "target": "staging"}

    with time_machine.travel(NOON, tick=False):
        statuses = {
            client.post(
                "/api/v1/reviews",
                body,
                content_type="application/json",
                REMOTE_ADDR="198.51.100.7",
            ).status_code
            for _ in range(25)
        }

    assert statuses == {401}
    [event] = refused_events()
    assert event.actor_type == "anonymous"
    assert event.payload_record.data["code"] == "not_authenticated"
    assert event.payload_record.client_ip == "198.51.100.7"
    window = RefusalWindow.objects.get()
    assert (window.source, window.count) == ("ip:198.51.100.7", 25)

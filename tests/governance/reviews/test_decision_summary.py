"""The review page opens with a decision summary: ready or blocked and why, the roles
still needed, a warning when the policy can never be met, and only the actions the
person may take; its query count stays flat as decisions grow."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.choices import Target
from governance.reviews.choices import Verdict
from governance.reviews.services import review_decide

pytestmark = pytest.mark.django_db


def _summary(html: str) -> str:
    start = html.index('data-testid="decision-summary"')
    return html[start : html.index("</section>", start)]


def test_summary_goes_from_blocked_to_ready_as_roles_approve(
    client_for, make_user, ready_for_production, open_review, auditor
):
    """Blocked, naming each missing role by its label, until every required role has
    approved; then ready."""
    review = open_review(ready_for_production())
    client = client_for(auditor)
    blocked = _summary(client.get(f"/reviews/{review.pk}/").content.decode())
    assert ">blocked<" in blocked and "Data science lead (1 more)" in blocked
    assert "data_science_lead" not in blocked
    for role in review.required_roles:
        review_decide(review=review, reviewer=make_user(role), verdict=Verdict.APPROVE, role=role)
    ready = _summary(client.get(f"/reviews/{review.pk}/").content.decode())
    assert ">ready<" in ready and "Still needed" not in ready


def test_summary_warns_when_the_only_lead_requested_the_review(
    client_for, version, open_review, lead, auditor
):
    """The requester may not approve their own review: when they are the only data
    science lead, the page says the policy can never be met."""
    review = open_review(version, Target.STAGING, requester=lead)
    html = client_for(auditor).get(f"/reviews/{review.pk}/").content.decode()
    assert 'data-testid="policy-unreachable"' in html
    assert "Data science lead needs 1 approval and only 0 person" in html


def test_recheck_button_only_for_those_who_may_recheck(
    client_for, version, open_review, lead, auditor
):
    """The auditor may not run the checks again (it answers 403), so the page does not
    offer it; a data science lead sees it."""
    review = open_review(version, Target.STAGING)
    assert (
        "Run the checks again"
        not in client_for(auditor).get(f"/reviews/{review.pk}/").content.decode()
    )
    assert "Run the checks again" in client_for(lead).get(f"/reviews/{review.pk}/").content.decode()
    assert client_for(auditor).post(f"/reviews/{review.pk}/recheck/").status_code == 403


def test_review_page_query_count_does_not_grow_with_decisions(
    client_for, make_user, ready_for_production, open_review, auditor
):
    """One decision or several on a review still open: the review page makes the same
    number of queries."""
    client = client_for(auditor)

    def count(review) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/reviews/{review.pk}/").status_code == 200
        return len(queries)

    small = open_review(ready_for_production())
    review_decide(
        review=small,
        reviewer=make_user("privacy_officer"),
        verdict=Verdict.APPROVE,
        role="privacy_officer",
    )
    large = open_review(ready_for_production())
    for role in ("privacy_officer", "devops"):
        review_decide(review=large, reviewer=make_user(role), verdict=Verdict.APPROVE, role=role)
    review_decide(
        review=large,
        reviewer=make_user("privacy_officer"),
        verdict=Verdict.APPROVE,
        role="privacy_officer",
    )
    large.refresh_from_db()
    assert large.is_open
    count(small)
    assert count(large) == count(small)

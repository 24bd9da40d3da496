"""Editing a card under review warns first that the board's decisions will go stale,
naming each review that would go back to waiting; saving then does exactly that, and
the review page tells the reviewers what changed since their decisions."""

import pytest
from django.urls import reverse

from governance.choices import Target
from governance.reviews.choices import ReviewState
from governance.reviews.models import ReviewDecision

pytestmark = pytest.mark.django_db


def _edit_url(version) -> str:
    return reverse(
        "governance:card_section_edit",
        kwargs={"model": version.model.slug, "version": version.version, "key": "limitations"},
    )


def test_card_edit_warns_that_approvals_on_its_reviews_go_stale(
    client_for, lead, version, approved_for
):
    review = approved_for(version, Target.STAGING)
    html = client_for(lead).get(_edit_url(version)).content.decode()
    assert 'data-testid="stale-warning"' in html
    assert f'href="/reviews/{review.pk}/"' in html
    assert "1 decision would go stale" in html

    # What the warning says is what saving does.
    response = client_for(lead).post(
        _edit_url(version), {"content": "Weak on new categories.", "comment": "clarified"}
    )
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING
    assert not ReviewDecision.objects.filter(review=review, active=True).exists()


def test_card_edit_without_decisions_shows_no_warning(client_for, lead, version, open_review):
    open_review(version, Target.STAGING)  # open, nobody decided yet: nothing to go stale
    html = client_for(lead).get(_edit_url(version)).content.decode()
    assert 'data-testid="stale-warning"' not in html


def test_review_page_shows_what_changed_since_decisions_went_stale(
    client_for, lead, version, approved_for
):
    review = approved_for(version, Target.STAGING)
    client_for(lead).post(
        _edit_url(version), {"content": "Weak on new categories.", "comment": "new limits"}
    )
    html = client_for(lead).get(reverse("governance:review_detail", args=[review.pk])).content
    page = html.decode()
    changed = page.split('data-testid="changed-since"')[1].split("</section>")[0]
    assert "<strong>Limitations</strong> edited by" in changed
    assert "“new limits”" in changed
    assert "stale: evidence changed" in page


def test_review_page_without_stale_decisions_shows_no_change_list(
    client_for, lead, version, approved_for
):
    review = approved_for(version, Target.STAGING)
    html = client_for(lead).get(reverse("governance:review_detail", args=[review.pk])).content
    assert b'data-testid="changed-since"' not in html


def test_review_page_query_count_does_not_grow_with_decisions(
    client_for, lead, privacy, devops, version, open_review
):
    """The reworked review page: one decision and its events, then two, take the same
    number of queries; once they went stale, one more (the card's revisions since),
    whether one revision or two."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.reviews.services import review_decide
    from portal.accounts.choices import Role

    review = open_review(version, Target.PRODUCTION)
    client = client_for(devops)
    path = reverse("governance:review_detail", args=[review.pk])

    def queries() -> int:
        client.get(path)  # the session and role lookups alike for every count
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    review_decide(review=review, reviewer=lead, verdict="approve", role=Role.DATA_SCIENCE_LEAD)
    one = queries()
    review_decide(review=review, reviewer=privacy, verdict="approve", role=Role.PRIVACY_OFFICER)
    two = queries()
    # Stale decisions add the one query for the card's revisions since, however many.
    client_for(lead).post(_edit_url(version), {"content": "Changed.", "comment": "c"})
    client = client_for(devops)
    one_revision = queries()
    client_for(lead).post(_edit_url(version), {"content": "Changed again.", "comment": "d"})
    client = client_for(devops)
    two_revisions = queries()
    assert ReviewDecision.objects.filter(review=review, stale_at__isnull=False).count() == 2
    assert one == two, (one, two)
    assert one_revision == two_revisions == one + 1, (one, one_revision, two_revisions)

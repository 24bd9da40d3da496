"""Editing a card under review warns first that the board's decisions will go stale,
naming each review that would go back to waiting; and saving then does exactly that."""

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

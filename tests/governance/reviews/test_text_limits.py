"""Free text on the review board has a limit: a 100,000-character decision comment is
a field error (page and service), and nothing is recorded."""

import pytest
from django.core.exceptions import ValidationError

from governance.choices import Target
from governance.reviews.models import DECISION_COMMENT_MAX_CHARS, ReviewDecision
from governance.reviews.services import review_decide
from portal.accounts.choices import Role

pytestmark = pytest.mark.django_db


def test_decision_page_refuses_a_too_long_comment_as_a_field_error(
    client_for, version, open_review, lead
):
    review = open_review(version, Target.STAGING)
    response = client_for(lead).post(
        f"/reviews/{review.pk}/decide/",
        {"verdict": "reject", "role": Role.DATA_SCIENCE_LEAD, "comment": "x" * 100_000},
    )
    assert response.status_code == 400
    assert "at most 5000 characters" in response.content.decode()
    assert not ReviewDecision.objects.exists()


def test_decision_page_accepts_a_comment_at_the_limit(client_for, version, open_review, lead):
    review = open_review(version, Target.STAGING)
    response = client_for(lead).post(
        f"/reviews/{review.pk}/decide/",
        {
            "verdict": "reject",
            "role": Role.DATA_SCIENCE_LEAD,
            "comment": "x" * DECISION_COMMENT_MAX_CHARS,
        },
    )
    assert response.status_code == 302
    assert len(ReviewDecision.objects.get().comment) == DECISION_COMMENT_MAX_CHARS


def test_review_decide_refuses_a_too_long_comment(version, open_review, lead):
    review = open_review(version, Target.STAGING)
    with pytest.raises(ValidationError) as refused:
        review_decide(
            review=review,
            reviewer=lead,
            verdict="reject",
            role=Role.DATA_SCIENCE_LEAD,
            comment="x" * (DECISION_COMMENT_MAX_CHARS + 1),
        )
    assert "comment" in refused.value.message_dict
    assert not ReviewDecision.objects.exists()

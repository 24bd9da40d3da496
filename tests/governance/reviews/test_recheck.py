"""Checks evaluated again when a fact outside the review changes."""

import pytest
from django.urls import reverse

from governance.choices import Target
from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.services import review_decide, review_recheck
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def _approve(review, *people):
    for person, role in people:
        review_decide(review=review, reviewer=person, verdict=Verdict.APPROVE, role=role)
    review.refresh_from_db()
    return review


def test_canary_waiting_only_for_staging_is_approved_when_staging_is(open_review, lead, devops):
    version = ModelVersionFactory()
    canary = _approve(
        open_review(version, Target.CANARY),
        (lead, Role.DATA_SCIENCE_LEAD),
        (devops, Role.DEVOPS),
    )
    assert canary.state == ReviewState.PENDING
    assert "previous_target_approved" in canary.failed_checks
    _approve(open_review(version, Target.STAGING), (lead, Role.DATA_SCIENCE_LEAD))
    canary.refresh_from_db()
    assert canary.state == ReviewState.APPROVED
    assert AuditEvent.objects.filter(action="review.checks_evaluated").exists()


def test_recheck_leaves_a_decided_review_alone(open_review, lead):
    review = _approve(
        open_review(ModelVersionFactory(), Target.STAGING), (lead, Role.DATA_SCIENCE_LEAD)
    )
    outcome = review_recheck(review=review, actor=lead.audit_actor())
    assert (outcome.changed, outcome.state) == (False, ReviewState.APPROVED)


def test_recheck_page_runs_checks_for_a_board_member(client_for, open_review, lead):
    review = open_review(ModelVersionFactory(), Target.CANARY)
    response = client_for(lead).post(
        reverse("governance:review_recheck", args=[review.pk]), follow=True
    )
    assert "Checks evaluated again" in response.content.decode()
    assert AuditEvent.objects.filter(
        action="review.checks_evaluated", actor_id=str(lead.pk)
    ).exists()


def test_recheck_page_on_a_decided_review_says_nothing_was_evaluated(client_for, open_review, lead):
    """A decided review's checks are not evaluated again: the page says so, no event."""
    review = _approve(
        open_review(ModelVersionFactory(), Target.STAGING), (lead, Role.DATA_SCIENCE_LEAD)
    )
    response = client_for(lead).post(
        reverse("governance:review_recheck", args=[review.pk]), follow=True
    )
    body = response.content.decode()
    assert "Checks evaluated again" not in body
    assert "its checks were not evaluated again" in body
    assert not AuditEvent.objects.filter(action="review.checks_evaluated").exists()


@pytest.mark.parametrize("role", [Role.AUDITOR, None])
def test_recheck_page_refuses_others(client_for, make_user, open_review, role):
    review = open_review(ModelVersionFactory(), Target.CANARY)
    person = make_user(role) if role else make_user()
    response = client_for(person).post(reverse("governance:review_recheck", args=[review.pk]))
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="review.checks_evaluated").exists()

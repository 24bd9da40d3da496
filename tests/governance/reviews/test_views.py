"""Review board pages: the queue (tabs, filters, query counts), the review page and
deciding on it, opening a review, policies; and the refusals for each."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.choices import Target
from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.models import Review, ReviewDecision, ReviewPolicy
from governance.reviews.services import review_decide
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from portal.changes.models import ChangeRequest
from portal.changes.services import change_approve
from portal.security.models import RefusalWindow
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

DSL = Role.DATA_SCIENCE_LEAD


def test_queue_splits_waiting_for_you_others_and_decided(
    client_for, open_review, lead, privacy, devops
):
    waiting = open_review(ModelVersionFactory(), Target.STAGING)  # needs a lead
    decided_by_me = open_review(ModelVersionFactory(), Target.PRODUCTION)
    review_decide(review=decided_by_me, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    rejected = open_review(ModelVersionFactory(), Target.CANARY)
    review_decide(
        review=rejected, reviewer=devops, verdict=Verdict.REJECT, role=Role.DEVOPS, comment="No"
    )
    client = client_for(lead)
    mine = client.get("/reviews/").content.decode()
    assert f"/reviews/{waiting.pk}/" in mine
    assert f"/reviews/{decided_by_me.pk}/" not in mine
    others = client.get("/reviews/?tab=others").content.decode()
    assert f"/reviews/{decided_by_me.pk}/" in others and f"/reviews/{waiting.pk}/" not in others
    decided = client.get("/reviews/?tab=decided").content.decode()
    assert f"/reviews/{rejected.pk}/" in decided and "Rejected" in decided
    # a privacy officer is not needed on staging: nothing of it waits for them
    po_page = client_for(privacy).get("/reviews/").content.decode()
    assert f"/reviews/{waiting.pk}/" not in po_page
    assert f"/reviews/{decided_by_me.pk}/" in po_page


def test_queue_filters_by_target(client_for, open_review, lead):
    staging = open_review(ModelVersionFactory(), Target.STAGING)
    production = open_review(ModelVersionFactory(), Target.PRODUCTION)
    page = client_for(lead).get("/reviews/?tab=waiting&target=production").content.decode()
    assert f"/reviews/{production.pk}/" in page and f"/reviews/{staging.pk}/" not in page


def test_queue_refuses_signed_in_person_without_role(client_for, outsider):
    response = client_for(outsider).get("/reviews/")
    assert response.status_code == 403


def _queue_queries(client, tab: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/reviews/?tab={tab}")
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("tab", ["waiting", "others", "decided"])
def test_queue_query_count_does_not_grow_with_rows(client_for, open_review, lead, privacy, tab):
    client = client_for(lead)

    def add(n: int) -> None:
        for _ in range(n):
            review = open_review(ModelVersionFactory(), Target.PRODUCTION)
            review_decide(
                review=review, reviewer=privacy, verdict=Verdict.APPROVE, role="privacy_officer"
            )
            if tab == "others":
                review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
            if tab == "decided":
                review_decide(
                    review=review, reviewer=lead, verdict=Verdict.REJECT, role=DSL, comment="x"
                )

    add(2)
    small = _queue_queries(client, tab)
    add(8)
    assert _queue_queries(client, tab) == small


def test_review_page_shows_evidence_and_decisions(
    client_for, ready_for_production, open_review, lead
):
    version = ready_for_production()
    review = open_review(version)
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    page = client_for(lead).get(f"/reviews/{review.pk}/").content.decode()
    assert version.image_digest in page
    assert "About limitations." in page  # card section
    assert "Metrics not worse than production" in page
    assert "1 of 1" in page and "0 of 1" in page  # quorum progress
    assert "You decided" in page
    assert "review.decision_recorded" in page


def test_review_page_refuses_outsider(client_for, version, open_review, outsider):
    review = open_review(version)
    assert client_for(outsider).get(f"/reviews/{review.pk}/").status_code == 403


def test_decide_through_the_page_records_the_decision(client_for, version, open_review, lead):
    review = open_review(version, Target.STAGING)
    response = client_for(lead).post(
        f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL, "comment": ""}
    )
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED
    decision = ReviewDecision.objects.get(review=review)
    assert (decision.reviewer, decision.role, decision.verdict) == (lead, DSL, "approve")
    assert AuditEvent.objects.get(action="review.decision_recorded").payload_record.client_ip


def test_decide_page_requires_a_comment_to_reject(client_for, version, open_review, lead):
    review = open_review(version)
    response = client_for(lead).post(
        f"/reviews/{review.pk}/decide/", {"verdict": "reject", "role": DSL, "comment": ""}
    )
    assert response.status_code == 400
    assert "a comment is required" in response.content.decode()
    assert not ReviewDecision.objects.exists()


def test_decide_page_refuses_self_approval(client_for, version, open_review, lead):
    review = open_review(version, Target.STAGING, requester=lead)
    response = client_for(lead).post(
        f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL}
    )
    assert response.status_code == 403
    assert "You requested this review" in response.content.decode()
    assert not ReviewDecision.objects.exists()


def test_decide_page_refuses_double_decision_and_decided_review(
    client_for, version, open_review, lead, privacy
):
    review = open_review(version)
    client = client_for(lead)
    client.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})
    again = client.post(
        f"/reviews/{review.pk}/decide/", {"verdict": "reject", "role": DSL, "comment": "x"}
    )
    assert again.status_code == 403 and "already decided" in again.content.decode()
    review_decide(
        review=review,
        reviewer=privacy,
        verdict=Verdict.REJECT,
        role="privacy_officer",
        comment="No",
    )
    closed = client.post(f"/reviews/{review.pk}/decide/", {"verdict": "withdraw", "comment": ""})
    assert closed.status_code == 409 and "closed" in closed.content.decode()
    assert ReviewDecision.objects.filter(reviewer=lead).count() == 1


def test_decide_page_on_a_closed_or_expired_review_is_a_409_naming_its_state(
    client_for, version, open_review, lead, privacy
):
    """Deciding on a review that was rejected, or has run out of time, is a conflict
    with the review's state, not a refusal of the person: 409, the page says the state
    where the decision was asked for, no decision recorded, no security event."""
    rejected = open_review(version)
    review_decide(
        review=rejected,
        reviewer=privacy,
        verdict=Verdict.REJECT,
        role="privacy_officer",
        comment="No",
    )
    expired = open_review(ModelVersionFactory(), Target.CANARY)
    Review.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client = client_for(lead)
    for review, message in (
        (rejected, "This review is rejected: it takes no more decisions."),
        (expired, "This review has expired."),
    ):
        answer = client.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})
        assert answer.status_code == 409
        assert f'data-testid="decision-error">{message}</p>' in answer.content.decode()
    assert not ReviewDecision.objects.filter(reviewer=lead).exists()
    assert not RefusalWindow.objects.exists()
    assert not AuditEvent.objects.filter(action="security.access_refused").exists()


def test_decide_page_refuses_non_board_member(client_for, version, open_review, auditor):
    review = open_review(version)
    response = client_for(auditor).post(
        f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL}
    )
    assert response.status_code == 403
    assert not ReviewDecision.objects.exists()


def test_open_review_page_opens_for_a_model_owner(client_for, version, owner):
    client = client_for(owner)
    assert "Open the review" in client.get("/reviews/open/").content.decode()
    response = client.post("/reviews/open/", {"version": version.pk, "target": "canary"})
    review = Review.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/reviews/{review.pk}/"
    assert review.requested_by == owner and review.target == "canary"


def test_open_review_page_refuses_devops(client_for, devops):
    assert client_for(devops).get("/reviews/open/").status_code == 403


def test_policy_pages_edit_and_audit(client_for, admin_user, make_user):
    policy = ReviewPolicy.objects.get(model=None, target=Target.PRODUCTION)
    client = client_for(admin_user)
    listing = client.get("/reviews/policies/").content.decode()
    assert f"/reviews/policies/{policy.pk}/" in listing
    form = client.get(f"/reviews/policies/{policy.pk}/").content.decode()
    assert 'name="quorum_privacy_officer"' in form
    data = {
        "quorum_data_science_lead": 2,
        "quorum_privacy_officer": 1,
        "quorum_devops": 1,
        "review_open_days": 10,
        "approval_valid_days": 7,
        "check_card_complete": "on",
        "check_fairness_present": "on",
        "check_lineage_complete": "on",
        "check_metrics_not_worse": "on",
        "check_previous_target": "on",
        "metric_tolerance_default": "0.05",
        "metric_tolerances": "mape = 0.03\nn_clusters = skip",
        "metric_directions": "",
    }
    response = client.post(f"/reviews/policies/{policy.pk}/", data)
    assert response.status_code == 302
    # Longer validity and a metric left unjudged loosen it: a second admin approves.
    change = ChangeRequest.objects.get(state="pending")
    change_approve(change=change, approved_by=make_user(Role.PORTAL_ADMIN))
    policy.refresh_from_db()
    assert policy.required_roles == {DSL: 2, "privacy_officer": 1, "devops": 1}
    assert policy.metric_tolerances == {"mape": 0.03, "n_clusters": None}
    assert policy.approval_valid_days == 7
    event = AuditEvent.objects.get(action="review_policy.updated")
    assert set(event.payload_record.data["changes"]) == {
        "required_roles",
        "review_open_days",
        "approval_valid_days",
        "metric_tolerances",
    }


def test_policy_form_refuses_no_approver(client_for, admin_user):
    policy = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    response = client_for(admin_user).post(
        f"/reviews/policies/{policy.pk}/",
        {
            "quorum_data_science_lead": 0,
            "quorum_privacy_officer": 0,
            "quorum_devops": 0,
            "review_open_days": 10,
            "approval_valid_days": 7,
            "metric_tolerance_default": "0.05",
        },
    )
    assert response.status_code == 200
    assert "At least one board role must approve" in response.content.decode()
    assert not AuditEvent.objects.filter(action="review_policy.updated").exists()


def test_policy_override_create_and_delete(client_for, admin_user, version):
    client = client_for(admin_user)
    response = client.post(
        "/reviews/policies/new/", {"model": version.model.slug, "target": "production"}
    )
    override = ReviewPolicy.objects.get(model=version.model)
    assert response["Location"] == f"/reviews/policies/{override.pk}/"
    assert "Remove" in client.get(f"/reviews/policies/{override.pk}/delete/").content.decode()
    client.post(f"/reviews/policies/{override.pk}/delete/")
    assert not ReviewPolicy.objects.filter(model=version.model).exists()
    assert AuditEvent.objects.filter(action="review_policy.deleted").exists()


@pytest.mark.parametrize("who", ["lead", "auditor", "owner"])
def test_policy_pages_refuse_non_admins(request, client_for, who):
    person = request.getfixturevalue(who)
    policy = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    client = client_for(person)
    assert client.get("/reviews/policies/").status_code == 403
    assert client.post(f"/reviews/policies/{policy.pk}/", {}).status_code == 403

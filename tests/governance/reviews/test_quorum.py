"""A quorum above one: a policy that needs two approvals from one role is met only by
two different people holding that role, in the services, on the review page and at
the gate."""

import re

import pytest

from governance.choices import Target
from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.models import (
    POLICY_SNAPSHOT_FIELDS,
    Review,
    ReviewDecision,
    ReviewPolicy,
)
from governance.reviews.selectors import gate_answer
from governance.reviews.services import DecisionRefused, policy_update, review_decide
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

DSL = Role.DATA_SCIENCE_LEAD


def _staging_needs_two_leads(admin_user) -> ReviewPolicy:
    """Staging's default policy, changed by an admin to need two data science leads."""
    policy = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    rules = {field: getattr(policy, field) for field in POLICY_SNAPSHOT_FIELDS}
    rules["required_roles"] = {DSL: 2}
    return policy_update(policy=policy, data=rules, actor=admin_user.audit_actor())


def test_quorum_of_two_needs_two_different_people_of_the_role(
    admin_user, version, open_review, lead, make_user
):
    """With two leads required, one lead's approval leaves the review pending with the
    lead role still missing at the gate; the same lead cannot count twice (not again,
    not after withdrawing and approving anew); a second lead approves it."""
    _staging_needs_two_leads(admin_user)
    review = open_review(version, Target.STAGING)
    assert review.required_roles == {DSL: 2}

    first = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert first.state == ReviewState.PENDING and not first.changed
    answer = gate_answer(
        model_slug=version.model.slug, version=version.version, target=Target.STAGING
    )
    assert (answer.allowed, answer.state, answer.missing_roles) == (False, "pending", [DSL])

    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert refused.value.code == "already_decided"
    review_decide(review=review, reviewer=lead, verdict=Verdict.WITHDRAW)
    again = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert again.state == ReviewState.PENDING  # still one lead's approval
    assert ReviewDecision.objects.filter(review=review, active=True).count() == 1

    second_lead = make_user(DSL)
    outcome = review_decide(review=review, reviewer=second_lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.decided and outcome.state == ReviewState.APPROVED
    decided = AuditEvent.objects.get(action="review.decided", object_id=str(review.pk))
    approvals = decided.payload_record.data["approvals"]
    assert [a["role"] for a in approvals] == [DSL, DSL]
    assert len({a["reviewer"] for a in approvals}) == 2
    answer = gate_answer(
        model_slug=version.model.slug, version=version.version, target=Target.STAGING
    )
    assert answer.allowed and answer.state == "approved" and answer.missing_roles == []


def test_quorum_of_two_is_not_filled_by_one_person_holding_two_roles(
    admin_user, version, open_review, lead, make_user
):
    """A person who is both lead and privacy officer approves once, in one role: their
    second approval is refused, so one lead plus that person make two, not three."""
    _staging_needs_two_leads(admin_user)
    review = open_review(version, Target.STAGING)
    both = make_user(DSL, Role.PRIVACY_OFFICER)
    review_decide(review=review, reviewer=both, verdict=Verdict.APPROVE, role=DSL)
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=both, verdict=Verdict.APPROVE, role=DSL)
    assert refused.value.code == "already_decided"
    assert Review.objects.get(pk=review.pk).state == ReviewState.PENDING
    outcome = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.state == ReviewState.APPROVED


def _progress_row(page: str, role: str) -> str:
    table = page.split('data-testid="progress"', 1)[1].split("</table>", 1)[0]
    row = re.search(rf"<tr><td>{role}</td>.*?</tr>", table)
    assert row, f"no progress row for {role}"
    return row.group(0)


def test_quorum_of_two_set_in_the_ui_holds_through_the_page_and_the_gate_api(
    client, client_for, admin_user, version, open_review, lead, make_user, api_token
):
    """An admin sets staging's lead quorum to two on the policy page. One lead's
    approval through the review page shows "1 of 2 ... missing" and the gate API
    answers 403 naming the lead role; the same lead's second approval is refused (403);
    a second lead's approval through the page opens the gate (200)."""
    policy = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    admin = client_for(admin_user)
    saved = admin.post(
        f"/reviews/policies/{policy.pk}/",
        {
            "quorum_data_science_lead": 2,
            "quorum_privacy_officer": 0,
            "quorum_devops": 0,
            "review_open_days": 7,
            "approval_valid_days": 30,
            "check_lineage_complete": "on",
            "metric_tolerance_default": "0.05",
            "metric_tolerances": "",
            "metric_directions": "",
        },
    )
    assert saved.status_code == 302
    policy.refresh_from_db()
    assert policy.required_roles == {DSL: 2}
    review = open_review(version, Target.STAGING)
    secret, _ = api_token("gates:read", owner=admin_user)
    gate_url = f"/api/v1/gates/{version.model.slug}/{version.version}/staging"

    page = client_for(lead)
    decided = page.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})
    assert decided.status_code == 302
    assert Review.objects.get(pk=review.pk).state == ReviewState.PENDING
    row = _progress_row(page.get(f"/reviews/{review.pk}/").content.decode(), DSL)
    assert "1 of 2" in row and "missing" in row
    gate = client.get(gate_url, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert gate.status_code == 403
    assert gate.json()["state"] == "pending" and gate.json()["missing_roles"] == [DSL]

    page = client_for(lead)
    twice = page.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})
    assert twice.status_code == 403 and "already decided" in twice.content.decode()
    assert client.get(gate_url, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 403

    page = client_for(make_user(DSL))
    decided = page.post(f"/reviews/{review.pk}/decide/", {"verdict": "approve", "role": DSL})
    assert decided.status_code == 302
    row = _progress_row(page.get(f"/reviews/{review.pk}/").content.decode(), DSL)
    assert "2 of 2" in row and "met" in row
    gate = client.get(gate_url, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert gate.status_code == 200
    assert gate.json()["allowed"] is True
    assert [a["role"] for a in gate.json()["approvals"]] == [DSL, DSL]
    assert len({a["reviewer"] for a in gate.json()["approvals"]}) == 2

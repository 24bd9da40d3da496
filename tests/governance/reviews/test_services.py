"""Review services: opening, deciding, refusals, evidence changes, policies, expiry,
and the audit events each step writes."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from governance.choices import CardSectionKey, LifecycleState, Target
from governance.models import ModelVersion
from governance.reviews.choices import CheckKey, ReviewSource, ReviewState, Verdict
from governance.reviews.models import ImageAttestation, Review, ReviewDecision, ReviewPolicy
from governance.reviews.selectors import gate_answer
from governance.reviews.services import (
    DecisionRefused,
    policy_override_create,
    policy_update,
    review_decide,
    review_open,
    review_recheck,
    reviews_expire,
)
from governance.reviews.tasks import expire as expire_task
from governance.services.cards import card_section_write
from governance.services.registry import version_metrics_replace, version_set_state
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.audit.verification import audit_chain_verify
from portal.changes.services import change_approve
from tests.factories import ModelVersionFactory
from tests.governance.reviews.conftest import in_production

pytestmark = pytest.mark.django_db

DSL, PO, DEVOPS = Role.DATA_SCIENCE_LEAD, Role.PRIVACY_OFFICER, Role.DEVOPS


def actions(review: Review) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="review", object_id=str(review.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def approve_all(review, lead, privacy, devops):
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    review_decide(review=review, reviewer=privacy, verdict=Verdict.APPROVE, role=PO)
    return review_decide(review=review, reviewer=devops, verdict=Verdict.APPROVE, role=DEVOPS)


# --- opening -----------------------------------------------------------------------------


def test_review_open_copies_policy_checks_and_audits(version, owner):
    review, created = review_open(
        version=version,
        target=Target.PRODUCTION,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )
    assert created
    assert review.state == ReviewState.PENDING
    assert review.requested_by == owner
    assert review.requested_by_actor == f"user:{owner.pk}"
    assert review.policy_snapshot["required_roles"] == {DSL: 1, DEVOPS: 1, PO: 1}
    assert review.policy_snapshot["requester_may_approve"] is False
    # a fresh version was never approved for canary
    assert review.failed_checks == [CheckKey.PREVIOUS_TARGET_APPROVED]
    assert actions(review) == ["review.opened"]
    version.refresh_from_db()
    assert version.state == LifecycleState.IN_REVIEW


def test_review_open_is_idempotent_for_a_live_review(version, owner, open_review):
    first = open_review(version)
    again, created = review_open(
        version=version,
        target=Target.PRODUCTION,
        requested_by_actor=Actor.system("ci"),
        source=ReviewSource.CI,
    )
    assert not created and again.pk == first.pk
    assert Review.objects.filter(version=version).count() == 1


def test_review_open_after_rejection_opens_a_new_review(version, open_review, lead):
    first = open_review(version)
    review_decide(review=first, reviewer=lead, verdict=Verdict.REJECT, role=DSL, comment="No.")
    second = open_review(version)
    assert second.pk != first.pk and second.state == ReviewState.PENDING


def test_review_open_by_token_makes_its_owner_the_requester(version, api_token, owner):
    _, token = api_token("reviews:write", owner=owner)
    review, _ = review_open(
        version=version,
        target=Target.STAGING,
        requested_by_actor=token.audit_actor(),
        source=ReviewSource.CI,
        external_ref="build-42",
    )
    assert review.requested_by == owner
    assert review.requested_by_actor == f"token:{token.prefix}"
    assert review.external_ref == "build-42"


def test_review_open_refuses_unknown_target_and_discarded_version(version, owner):
    with pytest.raises(ValidationError) as error:
        review_open(
            version=version, target="moon", requested_by_actor=owner.audit_actor(), source="ui"
        )
    assert "target" in error.value.message_dict
    ModelVersion.objects.filter(pk=version.pk).update(state=LifecycleState.DISCARDED)
    with pytest.raises(ValidationError) as error:
        review_open(
            version=version, target="staging", requested_by_actor=owner.audit_actor(), source="ui"
        )
    assert "version" in error.value.message_dict
    assert not Review.objects.exists()


# --- deciding ----------------------------------------------------------------------------


def test_review_approved_when_every_role_has_quorum(
    ready_for_production, open_review, lead, privacy, devops
):
    version = ready_for_production()
    review = open_review(version)
    first = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert first.state == ReviewState.PENDING and not first.decided
    review_decide(review=review, reviewer=privacy, verdict=Verdict.APPROVE, role=PO)
    with time_machine.travel(timezone.now(), tick=False):
        outcome = review_decide(
            review=review, reviewer=devops, verdict=Verdict.APPROVE, role=DEVOPS
        )
        now = timezone.now()
    assert outcome.decided and outcome.state == ReviewState.APPROVED
    review.refresh_from_db()
    assert review.approved_at == now
    assert review.expires_at == now + timedelta(days=14)
    assert actions(review) == [
        "review.opened",
        "review.decision_recorded",
        "review.decision_recorded",
        "review.decision_recorded",
        "review.decided",
    ]
    decided = AuditEvent.objects.get(action="review.decided", object_id=str(review.pk))
    assert decided.payload_record.data["outcome"] == "approved"
    assert {a["role"] for a in decided.payload_record.data["approvals"]} == {DSL, PO, DEVOPS}
    version.refresh_from_db()
    assert version.state == LifecycleState.APPROVED


def test_review_with_failing_check_stays_pending_after_all_approvals(
    open_review, lead, privacy, devops
):
    version = ModelVersionFactory(card="incomplete")
    review = open_review(version, Target.STAGING)
    outcome = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.state == ReviewState.APPROVED  # staging does not check the card

    version = ModelVersionFactory(card="incomplete", image_digest="")
    review = open_review(version, Target.STAGING)
    outcome = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.state == ReviewState.PENDING
    assert outcome.review.failed_checks == [CheckKey.LINEAGE_COMPLETE]


def test_any_rejection_rejects_the_review(version, open_review, lead, privacy):
    review = open_review(version)
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    outcome = review_decide(
        review=review, reviewer=privacy, verdict=Verdict.REJECT, role=PO, comment="PII in logs."
    )
    assert outcome.decided and outcome.state == ReviewState.REJECTED
    assert actions(review)[-1] == "review.decided"
    version.refresh_from_db()
    assert version.state == LifecycleState.REGISTERED


def test_request_changes_holds_the_review_until_withdrawn(
    ready_for_production, open_review, lead, privacy, devops
):
    version = ready_for_production()
    review = open_review(version)
    outcome = review_decide(
        review=review, reviewer=lead, verdict=Verdict.REQUEST_CHANGES, role=DSL, comment="Fix it."
    )
    assert outcome.state == ReviewState.CHANGES_REQUESTED
    review_decide(review=review, reviewer=privacy, verdict=Verdict.APPROVE, role=PO)
    review_decide(review=review, reviewer=devops, verdict=Verdict.APPROVE, role=DEVOPS)
    assert Review.objects.get(pk=review.pk).state == ReviewState.CHANGES_REQUESTED
    withdrawn = review_decide(review=review, reviewer=lead, verdict=Verdict.WITHDRAW)
    assert withdrawn.state == ReviewState.PENDING
    final = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert final.state == ReviewState.APPROVED
    lead_decisions = ReviewDecision.objects.filter(review=review, reviewer=lead).order_by("pk")
    assert [(d.verdict, d.active) for d in lead_decisions] == [
        ("request_changes", False),
        ("withdraw", False),
        ("approve", True),
    ]
    assert lead_decisions[0].comment == "Fix it."  # never edited


def test_withdrawing_an_approval_reopens_an_approved_review(
    ready_for_production, open_review, lead, privacy, devops
):
    version = ready_for_production()
    review = open_review(version)
    approve_all(review, lead, privacy, devops)
    outcome = review_decide(
        review=review, reviewer=devops, verdict=Verdict.WITHDRAW, comment="Infra not ready."
    )
    assert outcome.previous_state == ReviewState.APPROVED
    assert outcome.state == ReviewState.PENDING
    review.refresh_from_db()
    assert review.approved_at is None
    assert actions(review)[-2:] == ["review.decision_recorded", "review.state_changed"]


def test_member_with_two_roles_counts_for_the_one_chosen(
    ready_for_production, open_review, make_user, devops
):
    both = make_user(DSL, PO)
    review = open_review(ready_for_production())
    review_decide(review=review, reviewer=both, verdict=Verdict.APPROVE, role=PO)
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=both, verdict=Verdict.APPROVE, role=DSL)
    assert refused.value.code == "already_decided"
    outcome = review_decide(review=review, reviewer=devops, verdict=Verdict.APPROVE, role=DEVOPS)
    assert outcome.state == ReviewState.PENDING  # a second person must approve as lead
    assert ReviewDecision.objects.filter(review=review, reviewer=both).count() == 1


@pytest.mark.parametrize(
    ("who", "role", "code"),
    [
        ("auditor", DSL, "not_board_member"),
        ("owner", DSL, "not_board_member"),
        ("devops", DSL, "role_not_held"),
    ],
)
def test_review_decide_refuses_wrong_role(request, version, open_review, who, role, code):
    review = open_review(version)
    person = request.getfixturevalue(who)
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=person, verdict=Verdict.APPROVE, role=role)
    assert refused.value.code == code
    assert not ReviewDecision.objects.exists()
    assert actions(review) == ["review.opened"]


def test_review_decide_refuses_approval_in_a_role_the_policy_does_not_need(
    version, open_review, devops
):
    review = open_review(version, Target.STAGING)  # staging: a data science lead only
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=devops, verdict=Verdict.APPROVE, role=DEVOPS)
    assert refused.value.code == "role_not_required"


def test_review_decide_refuses_self_approval(version, open_review, lead):
    review = open_review(version, Target.STAGING, requester=lead)
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert refused.value.code == "self_approval"
    assert Review.objects.get(pk=review.pk).state == ReviewState.PENDING


def test_self_approval_allowed_when_the_policy_says_so(version, open_review, lead):
    ReviewPolicy.objects.filter(model=None, target=Target.STAGING).update(
        requester_may_approve=True
    )
    review = open_review(version, Target.STAGING, requester=lead)
    outcome = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.state == ReviewState.APPROVED


def test_review_decide_refuses_double_decision(version, open_review, lead):
    review = open_review(version)
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=lead, verdict=Verdict.REJECT, role=DSL, comment="x")
    assert refused.value.code == "already_decided"
    assert ReviewDecision.objects.filter(review=review).count() == 1


def test_review_decide_refuses_a_decided_review(version, open_review, lead, privacy):
    review = open_review(version)
    review_decide(review=review, reviewer=lead, verdict=Verdict.REJECT, role=DSL, comment="No.")
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=privacy, verdict=Verdict.APPROVE, role=PO)
    assert refused.value.code == "review_closed"


def test_review_decide_refuses_an_expired_review(version, open_review, lead):
    review = open_review(version)
    with time_machine.travel(review.expires_at + timedelta(minutes=1)):
        with pytest.raises(DecisionRefused) as refused:
            review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
        assert refused.value.code == "review_expired"
        reviews_expire()
        with pytest.raises(DecisionRefused) as refused:
            review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
        assert refused.value.code == "review_closed"


@pytest.mark.parametrize("verdict", [Verdict.REJECT, Verdict.REQUEST_CHANGES])
def test_review_decide_requires_a_comment_to_reject_or_request_changes(
    version, open_review, lead, verdict
):
    review = open_review(version)
    with pytest.raises(ValidationError) as error:
        review_decide(review=review, reviewer=lead, verdict=verdict, role=DSL, comment="  ")
    assert "comment" in error.value.message_dict
    assert not ReviewDecision.objects.exists()


def test_withdraw_without_a_decision_is_refused(version, open_review, lead):
    review = open_review(version)
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=lead, verdict=Verdict.WITHDRAW)
    assert refused.value.code == "nothing_to_withdraw"


# --- checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mape", "passed"),
    [(0.104, True), (0.105, True), (0.11, False), (0.09, True)],
)
def test_metrics_check_allows_mape_up_to_five_percent_worse(
    ready_for_production, open_review, mape, passed
):
    production = ModelVersionFactory(metrics={"mape": 0.10, "mae": 300.0})
    in_production(production)
    candidate = ready_for_production(model=production.model, metrics={"mape": mape, "mae": 300.0})
    review = open_review(candidate)
    assert (CheckKey.METRICS_NOT_WORSE not in review.failed_checks) is passed
    check = next(c for c in review.checks if c["key"] == CheckKey.METRICS_NOT_WORSE)
    if not passed:
        assert "mape" in check["detail"] and "tolerance 5.0%" in check["detail"]


def test_metrics_check_knows_higher_is_better_and_per_metric_tolerances(open_review):
    from governance.choices import ModelKind
    from tests.factories import RegisteredModelFactory

    model = RegisteredModelFactory(slug="test-recommender", kind=ModelKind.RECOMMENDATION)
    in_production(ModelVersionFactory(model=model, metrics={"hit_rate_at_10": 0.30}))
    candidate = ModelVersionFactory(model=model, metrics={"hit_rate_at_10": 0.27})  # 10% worse
    review = open_review(candidate, Target.CANARY)
    assert CheckKey.METRICS_NOT_WORSE in review.failed_checks
    better = ModelVersionFactory(model=model, metrics={"hit_rate_at_10": 0.40})
    assert CheckKey.METRICS_NOT_WORSE not in open_review(better, Target.CANARY).failed_checks

    ReviewPolicy.objects.filter(model=None, target=Target.CANARY).update(
        metric_tolerances={"hit_rate_at_10": 0.2}
    )
    lenient = ModelVersionFactory(model=model, metrics={"hit_rate_at_10": 0.27})
    assert CheckKey.METRICS_NOT_WORSE not in open_review(lenient, Target.CANARY).failed_checks


def test_production_needs_the_canary_approval_first(version, open_review, approved_for):
    review = open_review(version)
    assert CheckKey.PREVIOUS_TARGET_APPROVED in review.failed_checks
    approved_for(version, Target.STAGING)
    approved_for(version, Target.CANARY)
    again = ModelVersionFactory()
    approved_for(again, Target.STAGING)
    approved_for(again, Target.CANARY)
    assert open_review(again).failed_checks == []


# --- evidence changes --------------------------------------------------------------------


def test_card_edit_marks_decisions_stale_and_sends_review_back(
    ready_for_production, open_review, lead, privacy, devops
):
    version = ready_for_production()
    review = open_review(version)
    approve_all(review, lead, privacy, devops)
    card_section_write(
        card=version.card,
        key=CardSectionKey.LIMITATIONS,
        content="Weak on new stores.",
        data=None,
        actor=Actor.system("tests"),
    )
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING
    assert review.approved_at is None and review.evidence_revision == 1
    decisions = ReviewDecision.objects.filter(review=review)
    assert decisions.count() == 3
    assert all(not d.active and d.stale_at is not None for d in decisions)
    event = AuditEvent.objects.get(action="review.evidence_changed", object_id=str(review.pk))
    assert event.payload_record.data["stale_decisions"] == 3
    assert event.payload_record.data["from"] == "approved"
    assert "limitations" in event.payload_record.data["reason"]
    # members decide again on the new evidence
    outcome = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.state == ReviewState.PENDING
    assert outcome.decision.evidence_revision == 1


def test_metrics_replaced_sends_open_review_back(version, open_review, lead):
    review = open_review(version)
    review_decide(
        review=review, reviewer=lead, verdict=Verdict.REQUEST_CHANGES, role=DSL, comment="Re-run."
    )
    version_metrics_replace(
        version=version, metrics={"mape": 0.1}, metric_slices={}, actor=Actor.system("tests")
    )
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING
    assert not ReviewDecision.objects.filter(review=review, active=True).exists()


def test_evidence_change_leaves_closed_reviews_alone(version, open_review, lead):
    review = open_review(version)
    review_decide(review=review, reviewer=lead, verdict=Verdict.REJECT, role=DSL, comment="No.")
    version_metrics_replace(
        version=version, metrics={"mape": 0.1}, metric_slices={}, actor=Actor.system("tests")
    )
    review.refresh_from_db()
    assert review.state == ReviewState.REJECTED
    assert ReviewDecision.objects.get(review=review).active


# --- policies ----------------------------------------------------------------------------


def test_default_policies_exist_for_every_target():
    defaults = {p.target: p for p in ReviewPolicy.objects.filter(model=None)}
    assert set(defaults) == set(Target.values)
    production = defaults[Target.PRODUCTION]
    assert production.required_roles == {DSL: 1, DEVOPS: 1, PO: 1}
    assert not production.requester_may_approve
    assert production.check_previous_target and production.check_metrics_not_worse


def _policy_data(policy: ReviewPolicy, **changes) -> dict:
    data = {k: v for k, v in policy.snapshot().items() if k not in ("policy_id", "model", "target")}
    data.update(changes)
    return data


def test_policy_update_audits_changes_and_open_reviews_keep_their_snapshot(
    version, open_review, admin_user, lead
):
    review = open_review(version, Target.STAGING)
    policy = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    policy_update(
        policy=policy,
        data=_policy_data(policy, required_roles={DSL: 2}),
        actor=admin_user.audit_actor(),
    )
    event = AuditEvent.objects.get(action="review_policy.updated")
    assert event.payload_record.data["changes"] == {
        "required_roles": {"from": {DSL: 1}, "to": {DSL: 2}}
    }
    assert event.actor_id == str(admin_user.pk)
    outcome = review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=DSL)
    assert outcome.state == ReviewState.APPROVED  # opened under the one-lead policy
    assert open_review(ModelVersionFactory(), Target.STAGING).required_roles == {DSL: 2}


def test_policy_update_refuses_bad_rules(admin_user):
    policy = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    with pytest.raises(ValidationError) as error:
        policy_update(
            policy=policy,
            data=_policy_data(
                policy,
                required_roles={"auditor": 1},
                metric_directions={"x": "sideways"},
                review_open_days=0,
            ),
            actor=admin_user.audit_actor(),
        )
    assert set(error.value.message_dict) == {
        "required_roles.auditor",
        "metric_directions.x",
        "review_open_days",
    }
    assert not AuditEvent.objects.filter(action="review_policy.updated").exists()


def test_policy_update_with_negative_zero_tolerance_keeps_the_ledger_verifiable(admin_user):
    """A tolerance of -0 reads back from jsonb as 0.0: the audit digest is over the
    stored value, so audit_verify raises no false tamper alarm, and saving the same
    rules again changes nothing."""
    policy = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    data = _policy_data(
        policy, metric_tolerances={"mape": -0.0, "mae": 1e-300}, metric_tolerance_default=-0.0
    )
    policy_update(policy=policy, data=data, actor=admin_user.audit_actor())
    report = audit_chain_verify()
    assert report.ok, report.summary()
    policy.refresh_from_db()
    assert policy.metric_tolerances == {"mape": 0.0, "mae": 1e-300}
    assert str(policy.metric_tolerances["mape"]) == "0.0"
    policy_update(policy=policy, data=data, actor=admin_user.audit_actor())
    assert AuditEvent.objects.filter(action="review_policy.updated").count() == 1


def test_model_override_applies_to_new_reviews_of_that_model(
    version, admin_user, make_user, open_review
):
    override = policy_override_create(
        model=version.model, target=Target.PRODUCTION, actor=admin_user.audit_actor()
    )
    # Fewer roles and a check switched off loosen the policy: a second admin approves.
    proposed = policy_update(
        policy=override,
        data=_policy_data(override, required_roles={DEVOPS: 1}, check_previous_target=False),
        actor=admin_user.audit_actor(),
    )
    change_approve(change=proposed, approved_by=make_user(Role.PORTAL_ADMIN))
    review = open_review(version)
    assert review.policy_id == override.pk
    assert review.required_roles == {DEVOPS: 1}
    assert AuditEvent.objects.filter(action="review_policy.created").exists()
    with pytest.raises(ValidationError):
        policy_override_create(
            model=version.model, target=Target.PRODUCTION, actor=admin_user.audit_actor()
        )


# --- expiry ------------------------------------------------------------------------------


def test_reviews_expire_after_their_deadline_once(version, open_review):
    review = open_review(version)
    with time_machine.travel(review.expires_at - timedelta(minutes=1)):
        assert reviews_expire() == 0
    with time_machine.travel(review.expires_at + timedelta(minutes=1)):
        assert expire_task.apply().get() == 1
        assert reviews_expire() == 0
    review.refresh_from_db()
    assert review.state == ReviewState.EXPIRED
    event = AuditEvent.objects.get(action="review.decided", object_id=str(review.pk))
    assert event.payload_record.data["outcome"] == "expired"
    assert event.actor_type == "system"


def test_approval_lapses_after_its_validity(
    ready_for_production, open_review, lead, privacy, devops
):
    review = open_review(ready_for_production())
    approve_all(review, lead, privacy, devops)
    review.refresh_from_db()
    with time_machine.travel(review.expires_at + timedelta(seconds=1)):
        assert reviews_expire() == 1
    review.refresh_from_db()
    assert review.state == ReviewState.EXPIRED
    assert review.approved_at is not None


def test_a_discarded_versions_review_is_never_approved(
    ready_for_production, open_review, lead, privacy, devops, admin_user
):
    """A version discarded while its review waits is approved neither by a further
    approval (refused as a conflict with its state) nor by a recheck that finds its
    checks passing now that the quorum is complete: an approval would answer Cloud
    Deploy's rollouts and owe the image a Binary Authorization attestation."""
    version = ready_for_production(metrics={"mape": 0.2})
    in_production(ModelVersionFactory(model=version.model, metrics={"mape": 0.1}))
    review = open_review(version)
    outcome = approve_all(review, lead, privacy, devops)
    assert outcome.state == ReviewState.PENDING
    assert outcome.review.failed_checks == [CheckKey.METRICS_NOT_WORSE]
    version_set_state(version=version, state="discarded", actor=admin_user.audit_actor())
    in_production(ModelVersionFactory(model=version.model, metrics={"mape": 0.3}))
    assert review_recheck(review=review, actor=lead.audit_actor()).state == ReviewState.PENDING
    review_decide(review=review, reviewer=devops, verdict=Verdict.WITHDRAW)
    with pytest.raises(DecisionRefused) as refused:
        review_decide(review=review, reviewer=devops, verdict=Verdict.APPROVE, role=DEVOPS)
    assert refused.value.code == "version_discarded"
    assert refused.value.is_state_conflict
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING and review.approved_at is None
    assert not ImageAttestation.objects.filter(version=version).exists()
    answer = gate_answer(
        model_slug=version.model.slug, version=version.version, target=Target.PRODUCTION
    )
    assert (answer.allowed, answer.state) == (False, "discarded")

"""Loosening a review policy waits for a second portal admin; tightening applies at
once. The review page shows since when each approver held the role they used."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from governance.choices import Target
from governance.reviews.models import ReviewPolicy
from governance.reviews.policy_changes import policy_loosenings
from governance.reviews.services import (
    policy_override_create,
    policy_override_delete,
    policy_update,
    review_decide,
)
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest
from portal.changes.services import change_approve
from portal.notify.models import EmailNotification
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DSL, PRIVACY, DEVOPS = Role.DATA_SCIENCE_LEAD.value, Role.PRIVACY_OFFICER.value, Role.DEVOPS.value


def _data(policy: ReviewPolicy, **changes) -> dict:
    data = {k: v for k, v in policy.snapshot().items() if k not in ("policy_id", "model", "target")}
    data.update(changes)
    return data


@pytest.fixture()
def production() -> ReviewPolicy:
    return ReviewPolicy.objects.get(model=None, target=Target.PRODUCTION)


def _loosen(policy: ReviewPolicy) -> list[dict]:
    rules = _data(policy)
    roles = dict(rules["required_roles"])
    first = sorted(roles)[0]
    return [
        {
            "required_roles": {**roles, first: roles[first] - 1}
            if roles[first] > 1
            else {r: c for r, c in roles.items() if r != first}
        },
        {"requester_may_approve": True},
        {"check_card_complete": False},
        {"approval_valid_days": rules["approval_valid_days"] + 1},
        {"metric_tolerance_default": rules["metric_tolerance_default"] + 0.5},
    ]


@pytest.mark.parametrize("case", range(5), ids=["quorum", "self", "check", "validity", "tolerance"])
def test_policy_update_that_loosens_leaves_a_pending_request_and_no_effect(
    production, admin_user, case
):
    """Lower quorum or fewer roles, self-approval, a check removed, longer validity,
    wider tolerance: each only proposes."""
    before = production.snapshot()
    if case == 0 and len(before["required_roles"]) == 1 and 1 in before["required_roles"].values():
        pytest.skip("the default production policy has a single role of quorum 1")
    outcome = policy_update(
        policy=production,
        data=_data(production, **_loosen(production)[case]),
        actor=admin_user.audit_actor(),
    )
    assert isinstance(outcome, ChangeRequest) and outcome.state == ChangeState.PENDING
    production.refresh_from_db()
    assert production.snapshot() == before
    assert not AuditEvent.objects.filter(action="review_policy.updated").exists()


def test_policy_update_that_tightens_applies_at_once_and_tells_the_board(
    production, admin_user, make_user
):
    """A higher quorum and more roles apply at once; the board is e-mailed."""
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    roles = {**production.required_roles, DSL: 2, PRIVACY: 1, DEVOPS: 1}
    outcome = policy_update(
        policy=production,
        data=_data(production, required_roles=roles),
        actor=admin_user.audit_actor(),
    )
    assert isinstance(outcome, ReviewPolicy)
    production.refresh_from_db()
    assert production.required_roles == roles
    assert not ChangeRequest.objects.exists()
    assert EmailNotification.objects.filter(
        recipient=lead, event_type="governance.changed"
    ).exists()


def test_policy_loosening_applies_once_a_second_admin_approves(production, admin_user, make_user):
    change = policy_update(
        policy=production,
        data=_data(production, requester_may_approve=True),
        actor=admin_user.audit_actor(),
    )
    with pytest.raises(ValidationError, match="proposed this change"):
        change_approve(change=change, approved_by=admin_user)
    change_approve(change=change, approved_by=make_user(Role.PORTAL_ADMIN))
    production.refresh_from_db()
    assert production.requester_may_approve is True
    event = AuditEvent.objects.get(action="review_policy.updated")
    assert event.payload_record.data["change"] == change.pk


def test_policy_loosening_is_refused_once_the_policy_moved_on(production, admin_user, make_user):
    """The approval applies the exact `after` only to the exact `before`."""
    change = policy_update(
        policy=production,
        data=_data(production, requester_may_approve=True),
        actor=admin_user.audit_actor(),
    )
    policy_update(
        policy=production,
        data=_data(production, approval_valid_days=1),
        actor=admin_user.audit_actor(),
    )
    with pytest.raises(ValidationError, match="changed since"):
        change_approve(change=change, approved_by=make_user(Role.PORTAL_ADMIN))
    production.refresh_from_db()
    assert production.requester_may_approve is False


def test_removing_a_stricter_model_override_waits_for_a_second_admin(
    version, production, admin_user, make_user
):
    override = policy_override_create(
        model=version.model, target=Target.PRODUCTION, actor=admin_user.audit_actor()
    )
    policy_update(
        policy=override,
        data=_data(override, approval_valid_days=1),  # tighter than the default
        actor=admin_user.audit_actor(),
    )
    change = policy_override_delete(policy=override, actor=admin_user.audit_actor())
    assert change is not None and ReviewPolicy.objects.filter(pk=override.pk).exists()
    change_approve(change=change, approved_by=make_user(Role.PORTAL_ADMIN))
    assert not ReviewPolicy.objects.filter(pk=override.pk).exists()


def test_policy_loosenings_names_each_looser_rule():
    before = {
        "required_roles": {DSL: 2, DEVOPS: 1},
        "requester_may_approve": False,
        "check_lineage_complete": True,
        "approval_valid_days": 7,
        "metric_tolerance_default": 0.05,
        "metric_tolerances": {"mape": 0.03},
        "metric_directions": {},
    }
    assert policy_loosenings(before=before, after=dict(before)) == []
    tighter = {**before, "required_roles": {DSL: 3, DEVOPS: 1, PRIVACY: 1}}
    assert policy_loosenings(before=before, after=tighter) == []
    looser = {
        **before,
        "required_roles": {DSL: 1},
        "metric_tolerances": {"mape": None},
        "check_lineage_complete": False,
    }
    assert policy_loosenings(before=before, after=looser) == [
        "data_science_lead quorum lowered from 2 to 1",
        "devops no longer approves",
        "check_lineage_complete switched off",
        "wider tolerance for mape",
    ]


def test_policy_edit_page_proposes_a_loosening(client_for, admin_user, production):
    response = client_for(admin_user).post(
        f"/reviews/policies/{production.pk}/",
        {
            **{f"quorum_{r}": c for r, c in production.required_roles.items()},
            "review_open_days": production.review_open_days,
            "approval_valid_days": production.approval_valid_days + 30,
            **{
                f: "on"
                for f in (
                    "check_card_complete",
                    "check_fairness_present",
                    "check_lineage_complete",
                    "check_metrics_not_worse",
                    "check_previous_target",
                )
                if getattr(production, f)
            },
            "metric_tolerance_default": production.metric_tolerance_default,
            "metric_tolerances": "\n".join(
                f"{k} = {'skip' if v is None else v}"
                for k, v in production.metric_tolerances.items()
            ),
            "metric_directions": "\n".join(
                f"{k} = {v}" for k, v in production.metric_directions.items()
            ),
        },
        follow=True,
    )
    assert "applies when another portal admin approves" in response.content.decode()
    production.refresh_from_db()
    assert ChangeRequest.objects.filter(state="pending").count() == 1


def test_review_page_flags_an_approver_whose_role_is_fresh(
    client_for, version, open_review, make_user, admin_user
):
    """An approver granted their role an hour before approving is flagged; one who held
    it for weeks is shown with the date only."""
    veteran = make_user()
    newcomer = make_user()
    now = timezone.now()
    veteran.role_grants.create(role=Role.DATA_SCIENCE_LEAD, granted_at=now - timedelta(days=30))
    newcomer.role_grants.create(role=Role.DEVOPS, granted_at=now - timedelta(hours=1))
    review = open_review(version, Target.CANARY)
    review_decide(review=review, reviewer=veteran, verdict="approve", role=DSL)
    review_decide(review=review, reviewer=newcomer, verdict="approve", role=DEVOPS)

    html = client_for(admin_user).get(f"/reviews/{review.pk}/").content.decode()

    assert html.count('data-testid="role-since"') == 2
    assert html.count('data-testid="fresh-role"') == 1
    assert "role granted 1\xa0hour before deciding" in html
    assert (now - timedelta(days=30)).astimezone(timezone.get_current_timezone()).strftime(
        "%Y-%m-%d"
    ) in html


def test_review_page_does_not_flag_a_role_held_longer_than_a_day(
    client_for, version, open_review, make_user, admin_user
):
    """A role held 25 hours is not flagged (GOVERNANCE_FRESH_ROLE_HOURS is 24)."""
    person = UserFactory()
    with time_machine.travel(timezone.now() - timedelta(hours=25), tick=False):
        person.role_grants.create(role=Role.DATA_SCIENCE_LEAD)
    review = open_review(version, Target.STAGING)
    review_decide(review=review, reviewer=person, verdict="approve", role=DSL)
    html = client_for(admin_user).get(f"/reviews/{review.pk}/").content.decode()
    assert 'data-testid="fresh-role"' not in html

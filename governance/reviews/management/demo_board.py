"""The demo's review board at work, for the demo commands that put a version on a
target: every assignment the demo makes is approved first by the board members
`manage.py demo_users` creates, through the real review services (a review opened
under the policy, each required role's decision, the checks), so the gate answers 200
for every (version, target) the demo assigns and each version's evidence pack holds
the decisions behind it."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.choices import ReviewSource, ReviewState, Verdict
from governance.reviews.models import POLICY_SNAPSHOT_FIELDS, Review, ReviewPolicy
from governance.reviews.services import review_decide, review_open, review_recheck
from governance.reviews.services.policies import (
    policy_override_create,
    policy_override_delete,
    policy_update,
)
from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.changes.models import ChangeRequest
from portal.changes.services import change_approve

# The demo logins that act here (created by `manage.py demo_users`).
BOARD_EMAILS: dict[str, str] = {
    Role.DATA_SCIENCE_LEAD: "dsl@zeromargin.example",
    Role.DEVOPS: "devops@zeromargin.example",
    Role.PRIVACY_OFFICER: "privacy@zeromargin.example",
}
REQUESTER_EMAIL = "owner@zeromargin.example"
ADMIN_EMAILS = ("admin@zeromargin.example", "admin2@zeromargin.example")
# A version reaches a target only after the targets before it (the previous-target check).
TARGET_ORDER = (Target.STAGING, Target.CANARY, Target.PRODUCTION)


def _user(email: str) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        raise CommandError("run `manage.py demo_users` first")
    return user


def demo_board() -> dict[str, User]:
    """{board role: the demo member deciding in it}; CommandError without the demo users."""
    return {role: _user(email) for role, email in BOARD_EMAILS.items()}


def board_approve(
    *, version: ModelVersion, target: str, board: dict[str, User], comment: str = "Demo approval."
) -> Review:
    """Take `version` through the board for `target` and every target before it
    (staging, then canary, then production): the model owner opens each review under
    the policy that applies, each role the policy requires approves as its demo member,
    and the review is approved once its checks pass. Idempotent: an approved review is
    kept as it is. Returns the approved review for `target`.

    CommandError (naming the failed checks) when a review cannot be
    approved, so the caller assigns nothing the gate would refuse.
    """
    requester = _user(REQUESTER_EMAIL).audit_actor()
    for step in TARGET_ORDER:
        review, _ = review_open(
            version=version, target=step, requested_by_actor=requester, source=ReviewSource.UI
        )
        for role in review.required_roles:
            member = board.get(role)
            if review.state != ReviewState.PENDING or member is None:
                continue
            if review.decisions.filter(reviewer=member, active=True).exists():
                continue
            review = review_decide(
                review=review, reviewer=member, verdict=Verdict.APPROVE, role=role, comment=comment
            ).review
        if review.state == ReviewState.PENDING:
            review = review_recheck(review=review, actor=requester).review
        if review.state != ReviewState.APPROVED:
            failed = [c["label"] for c in review.checks if not c["passed"]]
            raise CommandError(
                f"{version.model.slug} {version.version}: the {step} review #{review.pk} is "
                f"{review.state} (failed checks: {', '.join(failed) or 'none'})"
            )
        if step == target:
            return review
    raise CommandError(f"no target {target!r}")


@contextmanager
def metrics_comparison_waived(
    *, model: RegisteredModel, targets: tuple[str, ...], reason: str
) -> Iterator[None]:
    """While the block runs, `model` reviews for `targets` open under its own policy
    without the metrics-not-worse check: a governance exception the first demo admin
    proposes and the second approves (four eyes, ChangeRequest), removed again on the
    way out (the default policy is stricter, so its removal takes effect at once).

    For the demo's first trainings: production's recorded metrics come from another
    evaluation set, so the check's comparison says nothing about them. CommandError
    without the demo admins, or when the model already has its own policy there.
    """
    proposer, approver = (_user(email) for email in ADMIN_EMAILS)
    created: list[ReviewPolicy] = []
    try:
        for target in targets:
            if ReviewPolicy.objects.filter(model=model, target=target).exists():
                raise CommandError(f"{model.slug} already has its own {target} policy")
            policy = policy_override_create(
                model=model, target=target, actor=proposer.audit_actor()
            )
            created.append(policy)
            rules = {field: getattr(policy, field) for field in POLICY_SNAPSHOT_FIELDS}
            change = policy_update(
                policy=policy,
                data={**rules, "check_metrics_not_worse": False},
                actor=proposer.audit_actor(),
            )
            if isinstance(change, ChangeRequest):
                change_approve(change=change, approved_by=approver, reason=reason)
        yield
    finally:
        for policy in created:
            change = policy_override_delete(policy=policy, actor=proposer.audit_actor())
            if change is not None:
                change_approve(change=change, approved_by=approver, reason=reason)

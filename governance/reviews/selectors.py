"""Reads for the review board: the policy that applies, the queue, one review with
its evidence, and the gate's answer. Query counts do not depend on the number of rows."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.checks import checks_evaluate
from governance.reviews.choices import FINAL_STATES, LIVE_STATES, OPEN_STATES, ReviewState, Verdict
from governance.reviews.models import Review, ReviewDecision, ReviewPolicy
from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant


def policy_for(*, model: RegisteredModel, target: str) -> ReviewPolicy | None:
    """The model's own policy for the target, else the target's default."""
    policies = {
        p.model_id: p
        for p in ReviewPolicy.objects.filter(Q(model=model) | Q(model__isnull=True), target=target)
    }
    return policies.get(model.pk) or policies.get(None)


def policies_list() -> QuerySet[ReviewPolicy]:
    """Defaults first (in target order), then each model's overrides."""
    return ReviewPolicy.objects.select_related("model").order_by("model__slug", "target")


def missing_roles(*, required: dict[str, int], approvals: Iterable[ReviewDecision]) -> list[str]:
    """The required roles whose quorum the approvals do not reach yet, by name."""
    counted = Counter(d.role for d in approvals)
    return sorted(role for role, quorum in required.items() if counted[role] < quorum)


# --- the queue -------------------------------------------------------------------------

QUEUE_TABS = ("waiting", "others", "decided")


def _queue_base() -> QuerySet[Review]:
    return (
        Review.objects.select_related("version__model", "requested_by")
        .annotate(
            approvals_count=Count(
                "decisions", filter=Q(decisions__active=True, decisions__verdict=Verdict.APPROVE)
            )
        )
        .prefetch_related(
            Prefetch(
                "decisions",
                queryset=ReviewDecision.objects.filter(active=True).order_by("decided_at"),
                to_attr="counting_decisions",
            )
        )
        .order_by("expires_at", "pk")
    )


def _waiting_for(user: Any) -> Q:
    """Open reviews whose policy asks for a board role the user holds, on which the
    user has no counting decision yet."""
    roles = sorted(user.board_roles)
    if not roles:
        return Q(pk__in=[])
    return (
        Q(state__in=OPEN_STATES)
        & Q(policy_snapshot__required_roles__has_any_keys=roles)
        & ~Q(decisions__reviewer=user, decisions__active=True)
    )


def reviews_queue(
    *, user: Any, tab: str, target: str = "", model: str = "", state: str = ""
) -> QuerySet[Review]:
    """One tab of a board member's queue: "waiting" (for them), "others" (open, waiting
    only for other people), "decided" (approved, rejected, expired; newest first).
    Each review carries `approvals_count` and `counting_decisions`."""
    reviews = _queue_base()
    waiting = _waiting_for(user)
    if tab == "waiting":
        reviews = reviews.filter(waiting)
    elif tab == "others":
        reviews = reviews.filter(state__in=OPEN_STATES).exclude(
            pk__in=Review.objects.filter(waiting).values("pk")
        )
    else:
        reviews = reviews.filter(state__in=FINAL_STATES).order_by("-decided_at", "-pk")
    if target:
        reviews = reviews.filter(target=target)
    if model:
        reviews = reviews.filter(version__model__slug=model)
    if state:
        reviews = reviews.filter(state=state)
    return reviews


def reviews_queue_counts(*, user: Any) -> dict[str, int]:
    waiting = _waiting_for(user)
    open_reviews = Review.objects.filter(state__in=OPEN_STATES)
    mine = open_reviews.filter(waiting).count()
    return {
        "waiting": mine,
        "others": open_reviews.count() - mine,
        "decided": Review.objects.filter(state__in=FINAL_STATES).count(),
    }


def open_review_counts_by_model() -> dict[int, int]:
    """{model pk: number of reviews waiting for the board}, for the registry's lists."""
    rows = (
        Review.objects.filter(state__in=OPEN_STATES)
        .values("version__model_id")
        .annotate(n=Count("pk"))
    )
    return {row["version__model_id"]: row["n"] for row in rows}


def reviews_for_version(*, version: ModelVersion) -> QuerySet[Review]:
    return Review.objects.filter(version=version).order_by("-opened_at", "-pk")


# --- one review --------------------------------------------------------------------------


def review_get(*, pk: int) -> Review:
    review = (
        Review.objects.select_related("version__model__owner", "version__card", "requested_by")
        .filter(pk=pk)
        .first()
    )
    if review is None:
        raise Http404(f"No review {pk}.")
    return review


def review_decisions(*, review: Review) -> list[ReviewDecision]:
    """Every decision on the review, counting or not, oldest first."""
    return list(review.decisions.select_related("reviewer").order_by("decided_at", "pk"))


@dataclass(frozen=True)
class RoleProgress:
    role: str
    quorum: int
    approvals: int

    @property
    def met(self) -> bool:
        return self.approvals >= self.quorum

    @property
    def role_label(self) -> str:
        return dict(Role.choices).get(self.role, self.role)


def review_progress(*, review: Review, decisions: list[ReviewDecision]) -> list[RoleProgress]:
    counted = Counter(d.role for d in decisions if d.active and d.verdict == Verdict.APPROVE)
    return [
        RoleProgress(role=role, quorum=quorum, approvals=counted[role])
        for role, quorum in sorted(review.required_roles.items())
    ]


@dataclass(frozen=True)
class ReviewSummary:
    """What the top of a review page says: ready or blocked and why, the roles still
    needed, and the roles the policy can never be met for."""

    ready: bool
    blockers: list[str]
    roles_needed: list[str]
    unreachable: list[str]


def review_summary(
    *, review: Review, progress: list[RoleProgress], checks: list[dict[str, Any]]
) -> ReviewSummary:
    """Summarise `review` for a decision. One query for the board's members whatever
    the number of decisions (a role the policy needs more approvals for than people
    may give is reported as unreachable; the requester does not count when the policy
    forbids self-approval)."""
    labels = dict(Role.choices)
    missing = [row for row in progress if not row.met]
    roles_needed = [
        f"{labels.get(row.role, row.role)} ({row.quorum - row.approvals} more)" for row in missing
    ]
    blockers = [f"failing check: {c['label']}" for c in checks if not c["passed"]]
    if roles_needed:
        blockers.append("approvals missing from " + ", ".join(roles_needed))
    unreachable = []
    if missing and review.is_open:
        holders = Counter(
            RoleGrant.objects.filter(
                role__in=[row.role for row in missing],
                revoked_at__isnull=True,
                user__is_active=True,
                user__is_machine=False,
            )
            .exclude(
                user_id=None
                if review.policy_snapshot.get("requester_may_approve")
                else review.requested_by_id
            )
            .values_list("role", flat=True)
        )
        for row in missing:
            if holders[row.role] < row.quorum:
                unreachable.append(
                    f"{labels.get(row.role, row.role)} needs {row.quorum} approval"
                    f"{'s' if row.quorum != 1 else ''} and only {holders[row.role]} "
                    "person who may approve holds the role"
                )
    ready = review.state == ReviewState.APPROVED or (
        review.is_open and not blockers and not unreachable
    )
    return ReviewSummary(
        ready=ready, blockers=blockers, roles_needed=roles_needed, unreachable=unreachable
    )


def decision_roles_for(*, review: Review, user: Any) -> list[str]:
    """The board roles a user may decide in on this review (the required ones first)."""
    required = set(review.required_roles)
    return sorted(user.board_roles, key=lambda role: (role not in required, role))


# --- the gate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GateAnswer:
    """Whether a version may deploy to a target, and why not."""

    allowed: bool
    state: str  # "approved", "pending", "rejected", "expired", "no_review"
    model: str
    version: str
    target: str
    image_digest: str
    review: Review | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    expires_at: datetime | None = None
    missing_roles: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


def gate_answer(*, model_slug: str, version: str, target: str) -> GateAnswer:
    """The latest review of the version for the target decides: approved and still
    valid lets it deploy; otherwise the answer says what is missing. Http404 for an
    unknown model or version."""
    found = (
        ModelVersion.objects.select_related("model")
        .filter(model__slug=model_slug, version=version)
        .first()
    )
    if found is None:
        raise Http404(f"No version {version} of {model_slug}.")
    base = {
        "model": found.model.slug,
        "version": found.version,
        "target": target,
        "image_digest": found.image_digest,
    }
    reviews = Review.objects.filter(version=found, target=target)
    # A live review speaks for the pair; otherwise the latest closed one explains.
    review = (
        reviews.filter(state__in=LIVE_STATES).first()
        or reviews.order_by("-opened_at", "-pk").first()
    )
    if review is None:
        policy = policy_for(model=found.model, target=target)
        snapshot = policy.snapshot() if policy else {}
        checks = checks_evaluate(version=found, target=target, snapshot=snapshot)
        return GateAnswer(
            allowed=False,
            state="no_review",
            missing_roles=sorted(snapshot.get("required_roles", {})),
            failed_checks=[c.key for c in checks if not c.passed],
            **base,
        )
    review.version = found
    decisions = list(
        review.decisions.filter(active=True, verdict=Verdict.APPROVE)
        .only("review_id", "role", "reviewer_id", "decided_at")
        .order_by("decided_at", "pk")
    )
    now = timezone.now()
    if review.state == ReviewState.APPROVED and review.expires_at > now:
        return GateAnswer(
            allowed=True,
            state="approved",
            review=review,
            approvals=[
                {"role": d.role, "reviewer": d.reviewer_ref, "decided_at": d.decided_at}
                for d in decisions
            ],
            expires_at=review.expires_at,
            **base,
        )
    if review.state in LIVE_STATES and review.expires_at <= now:
        state = "expired"  # past its deadline; the expiry task has not recorded it yet
    elif review.state in (ReviewState.APPROVED, ReviewState.EXPIRED):
        state = "expired"
    elif review.state == ReviewState.REJECTED:
        state = "rejected"
    else:
        state = "pending"
    if review.state in OPEN_STATES:
        checks = checks_evaluate(version=found, target=target, snapshot=review.policy_snapshot)
        failed = [c.key for c in checks if not c.passed]
    else:
        failed = review.failed_checks
    return GateAnswer(
        allowed=False,
        state=state,
        review=review,
        expires_at=review.expires_at,
        missing_roles=missing_roles(required=review.required_roles, approvals=decisions),
        failed_checks=failed,
        **base,
    )


def valid_target(target: str) -> bool:
    return target in Target.values

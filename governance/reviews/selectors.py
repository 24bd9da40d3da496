"""Reads for the review board: the policy that applies, the queue, one review with
its evidence, and the gate's answer. Query counts do not depend on the number of rows."""

import functools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Prefetch, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from governance.choices import LifecycleState, Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.checks import checks_evaluate
from governance.reviews.choices import FINAL_STATES, LIVE_STATES, OPEN_STATES, ReviewState, Verdict
from governance.reviews.models import GateState, Review, ReviewDecision, ReviewPolicy
from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant
from portal.changes.configuration import SIGNING_KEYS
from portal.changes.models import ApprovedConfiguration
from portal.dbprepared import cursor_prepared


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


def reviews_requested_open(*, user: Any) -> QuerySet[Review]:
    """Open reviews `user` asked for, soonest to expire first, with the queue's
    `approvals_count` and `counting_decisions`."""
    return _queue_base().filter(requested_by=user, state__in=OPEN_STATES)


def reviews_going_stale_on_edit(*, version: ModelVersion) -> list[Review]:
    """The waiting or approved reviews of `version` whose counting decisions an edit of
    its evidence would mark stale (see `reviews_evidence_changed`), each with
    `counting_count`; one query."""
    return list(
        Review.objects.filter(version=version, state__in=LIVE_STATES)
        .annotate(counting_count=Count("decisions", filter=Q(decisions__active=True)))
        .filter(counting_count__gt=0)
        .order_by("pk")
    )


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
class AttestationCache:
    """What the gate's stored row holds for signing: the attestation last signed for
    this answer (if any), the key it was signed with, and the approved signing keys as
    the same query read them."""

    gate_state_id: int
    revision: int
    attestation: str
    key: str
    expires_at: datetime | None
    approved_keys: Any


@dataclass(frozen=True)
class GateAnswer:
    """Whether a version may deploy to a target, and why not."""

    allowed: bool
    state: str  # "approved", "pending", "rejected", "expired", "no_review", "discarded"
    model: str
    version: str
    target: str
    image_digest: str
    review_id: int | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    expires_at: datetime | None = None
    missing_roles: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    # Only on answers read from the stored row; not part of the answer itself.
    cache: AttestationCache | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GateFacts:
    """What the speaking review says, before the clock is applied: what the services
    store in the gate's row (GateState) and the fresh computation reads anew."""

    review_id: int
    review_state: str
    expires_at: datetime
    approvals: list[dict[str, Any]]
    missing_roles: list[str]
    failed_checks: list[str]


def gate_facts(*, version_id: int, target: str) -> GateFacts | None:
    """The facts of the review that speaks for (version, target): the live one, else
    the latest closed one; None when the version was never reviewed for the target.
    The checks are the review's own, as its last change evaluated them."""
    reviews = Review.objects.filter(version_id=version_id, target=target)
    review = (
        reviews.filter(state__in=LIVE_STATES).first()
        or reviews.order_by("-opened_at", "-pk").first()
    )
    if review is None:
        return None
    decisions = list(
        review.decisions.filter(active=True, verdict=Verdict.APPROVE)
        .only("review_id", "role", "reviewer_id", "decided_at")
        .order_by("decided_at", "pk")
    )
    return GateFacts(
        review_id=review.pk,
        review_state=review.state,
        expires_at=review.expires_at,
        approvals=[
            {"role": d.role, "reviewer": d.reviewer_ref, "decided_at": d.decided_at}
            for d in decisions
        ],
        missing_roles=missing_roles(required=review.required_roles, approvals=decisions),
        failed_checks=review.failed_checks,
    )


def _gate_state_at(
    *, review_state: str, expires_at: datetime, now: datetime, version_state: str
) -> str:
    if version_state == LifecycleState.DISCARDED:
        # Whatever its reviews say: the portal refuses a discarded version a target.
        return "discarded"
    if review_state == ReviewState.APPROVED and expires_at > now:
        return "approved"
    if review_state in LIVE_STATES and expires_at <= now:
        return "expired"  # past its deadline; the expiry task has not recorded it yet
    if review_state in (ReviewState.APPROVED, ReviewState.EXPIRED):
        return "expired"
    if review_state == ReviewState.REJECTED:
        return "rejected"
    return "pending"


def gate_state_now(*, review_state: str, expires_at: datetime, version_state: str) -> str:
    """The gate's state ("approved", "pending", "rejected", "expired", "discarded") for
    a stored row's review state and expiry, the clock applied now: what a reader of
    GateState rows shows as the gate's current answer."""
    return _gate_state_at(
        review_state=review_state,
        expires_at=expires_at,
        now=timezone.now(),
        version_state=version_state,
    )


def _answer_from(
    facts: GateFacts,
    *,
    base: dict[str, Any],
    version_state: str,
    cache: AttestationCache | None = None,
) -> GateAnswer:
    state = _gate_state_at(
        review_state=facts.review_state,
        expires_at=facts.expires_at,
        now=timezone.now(),
        version_state=version_state,
    )
    if state == "approved":
        return GateAnswer(
            allowed=True,
            state=state,
            review_id=facts.review_id,
            approvals=facts.approvals,
            expires_at=facts.expires_at,
            cache=cache,
            **base,
        )
    return GateAnswer(
        allowed=False,
        state=state,
        review_id=facts.review_id,
        expires_at=facts.expires_at,
        missing_roles=facts.missing_roles,
        failed_checks=facts.failed_checks,
        **base,
    )


def gate_answer_compute(*, model_slug: str, version: str, target: str) -> GateAnswer:
    """The gate's answer computed afresh from the reviews (what the stored row must
    always equal). The latest review of the version for the target decides: approved
    and still valid lets it deploy; otherwise the answer says what is missing. Without
    a review, the policy that would apply says which roles and checks are missing. A
    discarded version never deploys (state "discarded"), whatever its reviews say.
    Http404 for an unknown model or version."""
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
    facts = gate_facts(version_id=found.pk, target=target)
    if facts is None:
        policy = policy_for(model=found.model, target=target)
        snapshot = policy.snapshot() if policy else {}
        checks = checks_evaluate(version=found, target=target, snapshot=snapshot)
        return GateAnswer(
            allowed=False,
            state="discarded" if found.state == LifecycleState.DISCARDED else "no_review",
            missing_roles=sorted(snapshot.get("required_roles", {})),
            failed_checks=[c.key for c in checks if not c.passed],
            **base,
        )
    return _answer_from(facts, base=base, version_state=found.state)


# The gate's one query is built and compiled by the ORM once per database, then run
# with each request's three values: a CI fleet asks the gate far more often than any
# page is seen, and building and compiling the query cost more than running it. The
# placeholders stand for the values in the compiled parameters (a value the ORM puts
# there itself, such as the signing keys' setting name, passes through unchanged).
_MODEL_SLOT = "\x00gate:model"
_VERSION_SLOT = "\x00gate:version"
_TARGET_SLOT = "\x00gate:target"
_GATE_COLUMNS = (
    "pk",
    "review_id",
    "review_state",
    "expires_at",
    "approvals",
    "missing_roles",
    "failed_checks",
    "revision",
    "attestation",
    "attestation_key",
    "attestation_expires_at",
    "version__version",
    "version__image_digest",
    "version__model__slug",
    "version__state",
    "approved_keys",
)


@functools.lru_cache(maxsize=8)
def _gate_row_sql(alias: str) -> tuple[str, tuple[Any, ...]]:
    """(SQL, parameters with placeholders) of the gate's one query on database `alias`."""
    queryset = (
        GateState.objects.using(alias)
        .annotate(
            approved_keys=Subquery(
                ApprovedConfiguration.objects.filter(name=SIGNING_KEYS).values("value")[:1]
            )
        )
        .filter(
            version__model__slug=_MODEL_SLOT, version__version=_VERSION_SLOT, target=_TARGET_SLOT
        )
        .values_list(*_GATE_COLUMNS)[:1]
    )
    sql, params = queryset.query.get_compiler(alias).as_sql()
    return sql, tuple(params)


def _json_value(value: Any) -> Any:
    # PostgreSQL hands jsonb over as text (Django's loader), SQLite as text too.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _datetime_value(value: Any) -> datetime | None:
    # PostgreSQL gives aware datetimes; SQLite naive ones (or text) in UTC.
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def _gate_row(*, model_slug: str, version: str, target: str) -> tuple[Any, ...] | None:
    """The stored row's values in _GATE_COLUMNS order, undecoded; None without a row."""
    sql, params = _gate_row_sql(DEFAULT_DB_ALIAS)
    values = {_MODEL_SLOT: model_slug, _VERSION_SLOT: version, _TARGET_SLOT: target}
    bound = [values.get(p, p) if isinstance(p, str) else p for p in params]
    # Prepared on PostgreSQL: planning its three-table join costs the server more than
    # running it, on every gate request.
    with cursor_prepared(using=DEFAULT_DB_ALIAS) as cursor:
        cursor.execute(sql, bound)
        return cursor.fetchone()


def gate_answer(*, model_slug: str, version: str, target: str) -> GateAnswer:
    """The gate's answer as the review services stored it (one query), with the clock
    applied now; the same as `gate_answer_compute`. A pair without a stored row (never
    reviewed for the target, or reviewed before answers were stored) is computed
    afresh. Http404 for an unknown model or version."""
    row = _gate_row(model_slug=model_slug, version=version, target=target)
    if row is None:
        return gate_answer_compute(model_slug=model_slug, version=version, target=target)
    (
        gate_state_id,
        review_id,
        review_state,
        expires_at,
        approvals,
        missing_roles_stored,
        failed_checks,
        revision,
        attestation,
        attestation_key,
        attestation_expires_at,
        version_name,
        image_digest,
        model,
        version_state,
        approved_keys,
    ) = row
    expires_at = _datetime_value(expires_at)
    base = {
        "model": model,
        "version": version_name,
        "target": target,
        "image_digest": image_digest,
        "review_id": review_id,
        "expires_at": expires_at,
    }
    # Only what the answer carries is decoded: an approval's decisions and the
    # attestation cache, or a refusal's missing roles and failed checks.
    state = _gate_state_at(
        review_state=review_state,
        expires_at=expires_at,
        now=timezone.now(),
        version_state=version_state,
    )
    if state != "approved":
        return GateAnswer(
            allowed=False,
            state=state,
            missing_roles=_json_value(missing_roles_stored),
            failed_checks=_json_value(failed_checks),
            **base,
        )
    cache = AttestationCache(
        gate_state_id=gate_state_id,
        revision=revision,
        attestation=attestation,
        key=attestation_key,
        expires_at=_datetime_value(attestation_expires_at),
        approved_keys=_json_value(approved_keys),
    )
    return GateAnswer(
        allowed=True,
        state=state,
        approvals=[
            {**a, "decided_at": datetime.fromisoformat(a["decided_at"])}
            for a in _json_value(approvals)
        ],
        cache=cache,
        **base,
    )


def gate_attestations_last_expiry(*, version: ModelVersion) -> dict[str, datetime]:
    """{target: when the last attestation the gate handed out for it expires}."""
    return dict(
        GateState.objects.filter(version=version, attestation_expires_at__isnull=False).values_list(
            "target", "attestation_expires_at"
        )
    )


def images_approved(*, images: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Of (model slug, target, image digest) triples, the ones the board approved: a
    version of that model with that image digest has a review for that target that was
    approved and has not been sent back or rejected since. An approval that lapsed
    (its validity ran out, state expired) still counts: it no longer lets a new
    deployment through the gate, but what was deployed under it was approved.
    One query whatever the number of triples."""
    wanted = set(images)
    if not wanted:
        return set()
    approved = Review.objects.filter(
        state__in=(ReviewState.APPROVED, ReviewState.EXPIRED),
        approved_at__isnull=False,
        target__in={target for _, target, _ in wanted},
        version__image_digest__in={digest for _, _, digest in wanted},
        version__model__slug__in={model for model, _, _ in wanted},
    ).values_list("version__model__slug", "target", "version__image_digest")
    return wanted & set(approved)


def valid_target(target: str) -> bool:
    return target in Target.values

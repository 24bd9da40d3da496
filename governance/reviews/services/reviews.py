"""Writes for reviews: opening one, recording decisions, reacting to changed evidence,
expiring.

Locking: every write here locks the version row first, then the review rows, the same
order the registry's writes take when they announce changed evidence (version, then
our `reviews_evidence_changed`), so two writers never wait on each other in a circle.
Each review's gate row (GateState, `services.gates`) is locked right after the review
and rewritten in the same transaction, so the gate's stored answer never lags a
change. The review row lock is what turns two board members deciding at the same moment into
one outcome: the second one waits, then sees the first one's decision. A write that
may decide a review then locks the version's Cloud Deploy outbox rows
(`rollout_answers_lock`), all before its first audit event: the audit chain head is
always the last lock a transaction takes (the portal's lock order, README "Audit
ledger"), because the outbox's send task holds a row while it audits.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.choices import LifecycleState, Target
from governance.models import ModelVersion
from governance.reviews.binauthz import image_attestation_queue
from governance.reviews.checks import PREVIOUS_TARGET, checks_evaluate
from governance.reviews.choices import (
    FINAL_STATES,
    LIVE_STATES,
    OPEN_STATES,
    VERDICTS_NEEDING_COMMENT,
    ReviewSource,
    ReviewState,
    Verdict,
)
from governance.reviews.clouddeploy_outbox import rollout_answers_lock, rollout_answers_write
from governance.reviews.models import DECISION_COMMENT_MAX_CHARS, Review, ReviewDecision
from governance.reviews.notifications import review_decided_notify, review_opened_notify
from governance.reviews.selectors import missing_roles, policy_for
from governance.reviews.services.gates import gate_state_lock, gate_state_refresh
from governance.services.registry import STATE_MOVES, version_set_state
from portal.accounts.models import User
from portal.apitokens.models import ApiToken
from portal.audit.actors import Actor
from portal.audit.choices import ActorType
from portal.audit.services import audit_record

AUDIT_OBJECT_TYPE = "review"


class DecisionRefused(PermissionDenied):
    """A board member may not make this decision now; `code` says which rule refused
    it (not_board_member, role_not_held, role_not_required, self_approval,
    already_decided, review_closed, review_expired, nothing_to_withdraw,
    version_discarded). `state` is the review's state when that is why (review_closed,
    review_expired, version_discarded)."""

    def __init__(self, message: str, *, code: str, state: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.state = state

    @property
    def is_state_conflict(self) -> bool:
        """Refused because the review is closed or expired, not because of who asks:
        a 409, not a security event."""
        return bool(self.state)


@dataclass(frozen=True)
class ReviewOutcome:
    """What a decision (or an evidence change, or expiry) did to a review."""

    review: Review
    decision: ReviewDecision | None
    previous_state: str
    state: str

    @property
    def changed(self) -> bool:
        return self.previous_state != self.state

    @property
    def decided(self) -> bool:
        """The review reached approved, rejected or expired just now."""
        return self.changed and self.state in FINAL_STATES


def _requesting_user(actor: Actor) -> User | None:
    """The person answerable for a request: the signed-in user, or a token's owner."""
    if actor.type == ActorType.USER and actor.id:
        return User.objects.filter(pk=actor.id).first()
    if actor.type == ActorType.TOKEN and actor.id:
        token = ApiToken.objects.select_related("owner").filter(prefix=actor.id).first()
        return token.owner if token else None
    return None


def _lock(review: Review) -> Review:
    """The version, the review, its gate row and the version's outbox rows, in the
    portal's order."""
    ModelVersion.objects.select_for_update().filter(pk=review.version_id).first()
    locked = (
        Review.objects.select_for_update(of=("self",))
        .select_related("version__model", "requested_by")
        .get(pk=review.pk)
    )
    gate_state_lock(version_id=review.version_id, target=review.target)
    rollout_answers_lock(version_id=review.version_id)
    return locked


def _gate_refresh(review: Review) -> None:
    gate_state_refresh(version_id=review.version_id, target=review.target)


def _checks_refresh(review: Review) -> None:
    results = checks_evaluate(
        version=review.version, target=review.target, snapshot=review.policy_snapshot
    )
    review.checks = [result.as_dict() for result in results]
    review.checks_evaluated_at = timezone.now()


def _audit(review: Review, action: str, actor: Actor, payload: dict, client_ip: str | None) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=review.pk,
        payload={
            "version": review.version.audit_id,
            "target": review.target,
            **payload,
        },
        client_ip=client_ip,
    )


def _version_state_follow(version: ModelVersion, actor: Actor) -> None:
    """Keep the version's lifecycle state in step with its reviews: approved while a
    review of it is approved, in review while one is open, registered otherwise. Only
    moves the registry allows, and never a version serving canary or production."""
    states = set(
        Review.objects.filter(version=version, state__in=LIVE_STATES).values_list(
            "state", flat=True
        )
    )
    if ReviewState.APPROVED in states:
        wanted = LifecycleState.APPROVED
    elif states:
        wanted = LifecycleState.IN_REVIEW
    else:
        wanted = LifecycleState.REGISTERED
    current = ModelVersion.objects.values_list("state", flat=True).get(pk=version.pk)
    followed = {LifecycleState.REGISTERED, LifecycleState.IN_REVIEW, LifecycleState.APPROVED}
    if current != wanted and current in followed and wanted in STATE_MOVES[current]:
        version_set_state(version=version, state=wanted, actor=actor)


def _on_review_opened(*, review: Review, actor: Actor) -> None:
    """Inside the opening transaction, after the review and its audit event exist.

    Where notifications to the board (outbox rows, sent on commit) belong.
    """
    review_opened_notify(review=review, actor=actor)


def _on_review_decided(*, outcome: ReviewOutcome, actor: Actor) -> None:
    """The one place a review reaches a final state (approved, rejected, expired),
    inside the transaction that decided it, with the review row locked.

    Side effects: audit `review.decided`. The Cloud Deploy approval (an outbox row
    for `approve_rollout`, for reviews with source clouddeploy and an external_ref),
    e-mails and outbound webhooks belong here, so they commit with the outcome.
    """
    review = outcome.review
    approvals = review.decisions.filter(active=True, verdict=Verdict.APPROVE)
    _audit(
        review,
        "review.decided",
        actor,
        {
            "from": outcome.previous_state,
            "outcome": outcome.state,
            "approvals": [
                {"role": d.role, "reviewer": d.reviewer_ref} for d in approvals.order_by("pk")
            ],
            "expires_at": review.expires_at if outcome.state == ReviewState.APPROVED else None,
            "source": review.source,
            "external_ref": review.external_ref,
        },
        None,
    )
    review_decided_notify(outcome=outcome, actor=actor)
    # Cloud Deploy rollouts waiting on this review get its answer (outbox, sent on commit).
    rollout_answers_write(review=review, actor=actor)
    # An image approved for production is owed its Binary Authorization attestation
    # (a row here, created in Container Analysis by a task after commit).
    image_attestation_queue(review=review, actor=actor)
    if outcome.state == ReviewState.APPROVED:
        # The next target's review may have been waiting only for this approval.
        following = Review.objects.filter(
            version_id=review.version_id,
            target__in=[t for t, before in PREVIOUS_TARGET.items() if before == review.target],
            state=ReviewState.PENDING,
        )
        for waiting in following:
            review_recheck(review=waiting, actor=actor)


def review_open(
    *,
    version: ModelVersion,
    target: str,
    requested_by_actor: Actor,
    source: str,
    external_ref: str | None = None,
    client_ip: str | None = None,
) -> tuple[Review, bool]:
    """Open a review of `version` for `target`; returns (review, created).

    Idempotent: while a review of this version for this target is waiting or approved,
    that review comes back (created False). The review copies the policy that applies
    (the model's own, else the target's default) and evaluates its checks. The person
    behind `requested_by_actor` (the user, or a token's owner) is the requester, who
    may not approve unless the policy allows it.
    Side effects: audit `review.opened`; the version moves to "in review" when it was
    only registered (audit `version.state_changed`).
    """
    if target not in Target.values:
        raise ValidationError({"target": f"No target {target!r}: staging, canary or production."})
    if source not in ReviewSource.values:
        raise ValidationError({"source": f"No review source {source!r}."})
    try:
        with transaction.atomic():
            # The version lock makes "find the live review, else create one" one step.
            version = (
                ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
            )
            if version.state in (LifecycleState.DISCARDED, LifecycleState.RETIRED):
                raise ValidationError(
                    {
                        "version": f"A {version.get_state_display().lower()} version is not "
                        "reviewed for deployment."
                    }
                )
            existing = Review.objects.filter(
                version=version, target=target, state__in=LIVE_STATES
            ).first()
            if existing is not None:
                return existing, False
            gate_state_lock(version_id=version.pk, target=target)
            policy = policy_for(model=version.model, target=target)
            if policy is None:
                raise ValidationError({"target": f"No review policy exists for {target}."})
            now = timezone.now()
            snapshot = policy.snapshot()
            review = Review(
                version=version,
                target=target,
                policy=policy,
                policy_snapshot=snapshot,
                source=source,
                external_ref=(external_ref or "")[:300],
                requested_by=_requesting_user(requested_by_actor),
                requested_by_actor=requested_by_actor.ref[:80],
                opened_at=now,
                expires_at=now + timedelta(days=snapshot["review_open_days"]),
            )
            _checks_refresh(review)
            review.save()
            _gate_refresh(review)
            _audit(
                review,
                "review.opened",
                requested_by_actor,
                {
                    "source": source,
                    "external_ref": review.external_ref,
                    "policy": snapshot,
                    "failed_checks": review.failed_checks,
                    "expires_at": review.expires_at,
                },
                client_ip,
            )
            _version_state_follow(version, requested_by_actor)
            _on_review_opened(review=review, actor=requested_by_actor)
    except IntegrityError:
        # A concurrent open won the unique constraint on a database without row locks.
        existing = Review.objects.filter(
            version=version, target=target, state__in=LIVE_STATES
        ).first()
        if existing is None:
            raise
        return existing, False
    return review, True


def _settled_state(review: Review) -> str:
    active = list(review.decisions.filter(active=True))
    verdicts = {d.verdict for d in active}
    if Verdict.REJECT in verdicts:
        return ReviewState.REJECTED
    if Verdict.REQUEST_CHANGES in verdicts:
        return ReviewState.CHANGES_REQUESTED
    approvals = [d for d in active if d.verdict == Verdict.APPROVE]
    if (
        not missing_roles(required=review.required_roles, approvals=approvals)
        and not review.failed_checks
        # A discarded version is approved for nothing: an approval would answer Cloud
        # Deploy's rollouts and owe its image a Binary Authorization attestation.
        and review.version.state != LifecycleState.DISCARDED
    ):
        return ReviewState.APPROVED
    return ReviewState.PENDING


def _move(review: Review, state: str, now: Any) -> None:
    previous = review.state
    review.state = state
    if state == ReviewState.APPROVED:
        review.decided_at = review.approved_at = now
        review.expires_at = review.approval_lapses_at(now)
    elif state in FINAL_STATES:
        review.decided_at = now
    elif previous == ReviewState.APPROVED:
        # Back to waiting: the board gets a full waiting period again.
        review.decided_at = review.approved_at = None
        review.expires_at = now + timedelta(days=review.policy_snapshot["review_open_days"])


def _refuse_unless_may_decide(
    review: Review, reviewer: User, verdict: str, role: str, now: Any
) -> None:
    if review.state not in OPEN_STATES:
        raise DecisionRefused(
            f"This review is {review.get_state_display().lower()}: it takes no more decisions.",
            code="review_closed",
            state=review.state,
        )
    if review.expires_at <= now:
        raise DecisionRefused(
            "This review has expired.", code="review_expired", state=ReviewState.EXPIRED
        )
    if not reviewer.board_roles:
        raise DecisionRefused("Only review board members decide.", code="not_board_member")
    if role not in reviewer.board_roles:
        raise DecisionRefused("You can only decide in a board role you hold.", code="role_not_held")
    if verdict == Verdict.APPROVE:
        if review.version.state == LifecycleState.DISCARDED:
            raise DecisionRefused(
                "This version is discarded: it is approved for no target.",
                code="version_discarded",
                state=review.state,
            )
        if role not in review.required_roles:
            raise DecisionRefused(
                "This review's policy needs no approval from that role.",
                code="role_not_required",
            )
        may_self_approve = review.policy_snapshot.get("requester_may_approve", False)
        if review.requested_by_id == reviewer.pk and not may_self_approve:
            raise DecisionRefused(
                "You requested this review; its policy does not let you approve it.",
                code="self_approval",
            )
    if review.decisions.filter(reviewer=reviewer, active=True).exists():
        raise DecisionRefused(
            "You have already decided on this review; withdraw that decision first.",
            code="already_decided",
        )


def review_decide(
    *,
    review: Review,
    reviewer: User,
    verdict: str,
    role: str = "",
    comment: str = "",
    client_ip: str | None = None,
) -> ReviewOutcome:
    """Record a board member's decision and settle the review.

    approve / reject / request_changes count for `role`, one of the member's board
    roles (approvals only for a role the policy requires). A comment is required to
    reject or request changes. `withdraw` takes back the member's counting approval or
    change request (on an open or approved review) as a new record; `role` is ignored.
    Any rejection rejects the review; a change request holds it at "changes
    requested"; it is approved when every required role has its quorum of approvals
    and every check passes (checks are evaluated again now), unless the version has
    been discarded (an approval of a discarded version is refused).
    Refusals: ValidationError (verdict, comment: required for some verdicts, at most
    DECISION_COMMENT_MAX_CHARS characters), DecisionRefused (who may decide).
    Side effects: the decision, audit `review.decision_recorded`, `review.state_changed`
    or `review.decided` when the state moves, the version's lifecycle state.
    """
    if verdict not in Verdict.values:
        raise ValidationError({"verdict": f"No verdict {verdict!r}."})
    comment = (comment or "").strip()
    if verdict in VERDICTS_NEEDING_COMMENT and not comment:
        raise ValidationError({"comment": "Say why: a comment is required for this decision."})
    if len(comment) > DECISION_COMMENT_MAX_CHARS:
        raise ValidationError(
            {"comment": f"A comment is at most {DECISION_COMMENT_MAX_CHARS:,} characters."}
        )
    actor = reviewer.audit_actor()
    with transaction.atomic():
        review = _lock(review)
        now = timezone.now()
        previous_state = review.state
        if verdict == Verdict.WITHDRAW:
            if review.state not in LIVE_STATES or review.expires_at <= now:
                state = review.state if review.state not in LIVE_STATES else ReviewState.EXPIRED
                raise DecisionRefused(
                    f"This review is closed ({ReviewState(state).label.lower()}): there is "
                    "nothing to withdraw.",
                    code="review_closed",
                    state=state,
                )
            earlier = (
                review.decisions.select_for_update()
                .filter(
                    reviewer=reviewer,
                    active=True,
                    verdict__in=(Verdict.APPROVE, Verdict.REQUEST_CHANGES),
                )
                .first()
            )
            if earlier is None:
                raise DecisionRefused(
                    "You have no approval or change request on this review to withdraw.",
                    code="nothing_to_withdraw",
                )
            earlier.active, earlier.withdrawn_at = False, now
            earlier.save(update_fields=["active", "withdrawn_at"])
            role = earlier.role
            active = False
        else:
            _refuse_unless_may_decide(review, reviewer, verdict, role, now)
            active = True
        try:
            with transaction.atomic():
                decision = ReviewDecision.objects.create(
                    review=review,
                    reviewer=reviewer,
                    role=role,
                    verdict=verdict,
                    comment=comment,
                    decided_at=now,
                    evidence_revision=review.evidence_revision,
                    active=active,
                )
        except IntegrityError:
            raise DecisionRefused(
                "You have already decided on this review.", code="already_decided"
            ) from None
        _checks_refresh(review)
        state = _settled_state(review)
        _move(review, state, now)
        review.save()
        _gate_refresh(review)
        _audit(
            review,
            "review.decision_recorded",
            actor,
            {
                "decision": decision.pk,
                "verdict": verdict,
                "role": role,
                "reviewer": decision.reviewer_ref,
                "evidence_revision": review.evidence_revision,
                "comment_given": bool(comment),
            },
            client_ip,
        )
        outcome = ReviewOutcome(
            review=review, decision=decision, previous_state=previous_state, state=state
        )
        if outcome.decided:
            _on_review_decided(outcome=outcome, actor=actor)
        elif outcome.changed:
            _audit(
                review, "review.state_changed", actor, {"from": previous_state, "to": state}, None
            )
        if outcome.changed:
            _version_state_follow(review.version, actor)
    return outcome


def review_recheck(*, review: Review, actor: Actor, client_ip: str | None = None) -> ReviewOutcome:
    """Evaluate a waiting review's automated checks again and settle it.

    For facts outside the review: an earlier target approved, production replaced, a
    policy's tolerance understood differently. A review whose quorum is complete is
    approved once its checks pass. Side effects: the checks stored, audit
    `review.checks_evaluated`; if that decides the review, as for a decision.
    """
    with transaction.atomic():
        review = _lock(review)
        previous_state = review.state
        if previous_state != ReviewState.PENDING:
            return ReviewOutcome(
                review=review, decision=None, previous_state=previous_state, state=previous_state
            )
        now = timezone.now()
        _checks_refresh(review)
        state = _settled_state(review)
        _move(review, state, now)
        review.save()
        _gate_refresh(review)
        _audit(
            review,
            "review.checks_evaluated",
            actor,
            {"failed_checks": review.failed_checks, "state": state},
            client_ip,
        )
        outcome = ReviewOutcome(
            review=review, decision=None, previous_state=previous_state, state=state
        )
        if outcome.decided:
            _on_review_decided(outcome=outcome, actor=actor)
        if outcome.changed:
            _version_state_follow(review.version, actor)
    return outcome


def reviews_evidence_changed(*, version: ModelVersion, reason: str, actor: Actor) -> None:
    """The version's evidence changed (card edited, metrics replaced): the decisions so
    far on its waiting or approved reviews no longer count (marked stale) and those
    reviews go back to waiting, with their checks evaluated again.

    Call inside the transaction of the change. Side effects per review: decisions
    stale, `evidence_revision` + 1, audit `review.evidence_changed` (with the reason
    and how many decisions went stale); the version's lifecycle state follows.
    """
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        reviews = list(
            Review.objects.select_for_update(of=("self",))
            .select_related("version__model")
            .filter(version_id=version.pk, state__in=LIVE_STATES)
            .order_by("pk")
        )
        if not reviews:
            return
        for review in reviews:
            gate_state_lock(version_id=version.pk, target=review.target)
        now = timezone.now()
        for review in reviews:
            stale = review.decisions.filter(active=True).update(active=False, stale_at=now)
            previous_state = review.state
            review.evidence_revision += 1
            _move(review, ReviewState.PENDING, now)
            _checks_refresh(review)
            review.save()
            _gate_refresh(review)
            _audit(
                review,
                "review.evidence_changed",
                actor,
                {
                    "reason": reason[:200],
                    "stale_decisions": stale,
                    "from": previous_state,
                    "to": review.state,
                    "evidence_revision": review.evidence_revision,
                    "failed_checks": review.failed_checks,
                },
                None,
            )
        _version_state_follow(version, actor)


def reviews_expire(*, actor: Actor | None = None) -> int:
    """Expire every waiting review past its deadline and every approval past its
    validity; returns how many. Safe to run twice: each review is locked and checked
    again before it changes.

    Side effects per review: state expired, audit `review.decided` (outcome expired),
    the version's lifecycle state.
    """
    actor = actor or Actor.system("worker")
    due = list(
        Review.objects.filter(state__in=LIVE_STATES, expires_at__lte=timezone.now())
        .order_by("expires_at")
        .values_list("pk", "version_id")
    )
    expired = 0
    for pk, version_id in due:
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(pk=version_id).first()
            review = (
                Review.objects.select_for_update(of=("self",))
                .select_related("version__model")
                .filter(pk=pk, state__in=LIVE_STATES, expires_at__lte=timezone.now())
                .first()
            )
            if review is None:
                continue
            gate_state_lock(version_id=version_id, target=review.target)
            rollout_answers_lock(version_id=version_id)
            previous_state = review.state
            _move(review, ReviewState.EXPIRED, timezone.now())
            review.save()
            _gate_refresh(review)
            _on_review_decided(
                outcome=ReviewOutcome(
                    review=review,
                    decision=None,
                    previous_state=previous_state,
                    state=ReviewState.EXPIRED,
                ),
                actor=actor,
            )
            _version_state_follow(review.version, actor)
            expired += 1
    return expired

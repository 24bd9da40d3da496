"""Cloud Deploy approvals, out: the review's outcome goes back to Cloud Deploy.

When a review linked to rollouts reaches a final state, `rollout_answers_write`
(called from the review services' `_on_review_decided`, inside the deciding
transaction) writes one RolloutApprovalOutbox row per rollout and queues
`reviews.clouddeploy_approve` on commit. The task calls `rollout_answer_send`, which
reads the rollout's approvalState first and calls approve at most once.

Lock order (the portal's one order, see README "Audit ledger"): the version row, then
its review rows, then their outbox rows, and the audit chain head last; no lock is
held across a call to Cloud Deploy. A decision and the hook take the version's outbox
rows (`rollout_answers_lock`) right after the review, before their first audit event.
The send task runs the portal's shared outbox steps (`portal.outbox`): it claims its
row in a short transaction (state `sending` with a lease, FORWARD_LEASE_SECONDS),
calls Cloud Deploy holding nothing, then records the result in a second short
transaction that locks the row first and the chain head last (by auditing). A task
killed while its call is in flight leaves the row `sending`; once the lease has run
out the next run reads the rollout and, when Cloud Deploy shows the board's own
answer, records it as sent (`review.clouddeploy_forward_confirmed`).

This module sits below the review services (they call it when a review is decided);
the push intake that opens reviews is governance.reviews.clouddeploy_intake, above them.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.reviews.choices import (
    FINAL_STATES,
    OUTBOX_LIVE_STATES,
    OutboxState,
    ReviewSource,
    ReviewState,
)
from governance.reviews.clients import clouddeploy_approvals
from governance.reviews.models import PubSubMessage, Review, RolloutApprovalOutbox
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.outbox import (
    Backoff,
    Outbox,
    lease_left,
    outbox_claim,
    outbox_failure_record,
    outbox_send,
)
from worker.backends.clouddeploy import CloudDeployApprovals, CloudDeployUnavailable, RolloutInfo

logger = logging.getLogger(__name__)

CLOUDDEPLOY = Actor.system("clouddeploy")
WORKER = Actor.system("worker")
ACTION_REQUIRED = "Required"
# Attempts at sending one answer before the outbox row is marked failed (then only
# `manage.py clouddeploy_outbox_retry` sends it again).
FORWARD_MAX_ATTEMPTS = 8
FORWARD_BACKOFF_BASE_SECONDS = 30
FORWARD_BACKOFF_MAX_SECONDS = 3600
# How long a send task owns a row it claimed (state `sending`): longer than its three
# calls to Cloud Deploy can take (DEFAULT_TIMEOUT_SECONDS each). After that another
# run may take the row over, as the first one is taken for dead.
FORWARD_LEASE_SECONDS = 300


@dataclass(frozen=True)
class ForwardResult:
    """What one run of the send task did to an outbox row."""

    outbox_id: int
    state: str
    attempts: int
    retry: bool = False
    error: str = ""
    # Seconds to wait before the retry when it is not the attempts' backoff (a lease).
    retry_in: int | None = None


FORWARD_BACKOFF = Backoff(
    base_seconds=FORWARD_BACKOFF_BASE_SECONDS, max_seconds=FORWARD_BACKOFF_MAX_SECONDS
)


def forward_backoff_seconds(attempts: int) -> int:
    """Seconds to wait before the next attempt after `attempts` failed ones:
    30 s, 1 min, 2 min, ... capped at an hour (about 1 h 4 min over 8 attempts)."""
    return FORWARD_BACKOFF.seconds(attempts)


def rollout_key(name: str) -> str:
    """The rollout's name after `projects/<p>/`: the same whether the project is named by
    its number (as Pub/Sub messages do) or its id."""
    parts = name.split("/", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "projects" else name


def _rollouts_of(review: Review) -> list[str]:
    names = sorted(
        set(
            PubSubMessage.objects.filter(review=review, action=ACTION_REQUIRED)
            .exclude(rollout="")
            .values_list("rollout", flat=True)
        )
    )
    if review.source == ReviewSource.CLOUD_DEPLOY and review.external_ref:
        names.insert(0, review.external_ref)
    rollouts: dict[str, str] = {}
    for name in names:  # one rollout named both ways gets one answer
        rollouts.setdefault(rollout_key(name), name)
    return sorted(rollouts.values())


def _audit_outbox(row: RolloutApprovalOutbox, action: str, actor: Actor, **extra: object) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type="review",
        object_id=row.review_id,
        payload={
            "outbox": row.pk,
            "rollout": row.rollout,
            "approved": row.approved,
            "state": row.state,
            "attempts": row.attempts,
            **extra,
        },
    )


def _queue_send(row: RolloutApprovalOutbox) -> None:
    from governance.reviews.tasks import clouddeploy_approve  # noqa: PLC0415 -- task

    outbox_id = row.pk
    transaction.on_commit(lambda: clouddeploy_approve.delay(outbox_id))


def rollout_answers_lock(*, version_id: int) -> None:
    """Lock the live outbox rows of every review of the version.

    Call inside a transaction that may write an answer (a decision, expiry, the hook
    joining a decided review), after the version and review rows and before the first
    audit event: the send task locks a row and then the chain head, so a transaction
    holding the chain head must never wait for a row. Side effects: none but the locks.
    """
    list(
        RolloutApprovalOutbox.objects.select_for_update(of=("self",))
        .filter(review__version_id=version_id, state__in=OUTBOX_LIVE_STATES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def rollout_answer_write(
    *, review: Review, rollout: str, actor: Actor
) -> RolloutApprovalOutbox | None:
    """Queue the decided review's answer for one rollout (None when Cloud Deploy has
    its answer already, or one is being sent). Call inside the deciding transaction,
    review row locked.

    Side effects: an outbox row, audit `review.clouddeploy_queued` (and
    `review.clouddeploy_forward_cancelled` for a replaced unsent answer); on commit,
    the `reviews.clouddeploy_approve` task.
    """
    approved = review.state == ReviewState.APPROVED
    live = (
        RolloutApprovalOutbox.objects.select_for_update()
        .filter(
            Q(rollout=rollout) | Q(rollout__endswith=f"/{rollout_key(rollout)}"),
            state__in=OUTBOX_LIVE_STATES,
        )
        .first()
    )
    if live is not None:
        if live.state in (OutboxState.SENT, OutboxState.SUPERSEDED):
            return None  # Cloud Deploy has its answer: a rollout is approved at most once
        if live.state == OutboxState.SENDING:
            # The call may be in flight: Cloud Deploy takes the first answer it gets.
            if live.approved != approved or live.review_id != review.pk:
                logger.warning(
                    "outbox %s is being sent; the later answer for %s is not queued",
                    live.pk,
                    rollout,
                )
            return None
        if (
            live.state == OutboxState.PENDING
            and live.approved == approved
            and live.review_id == review.pk
        ):
            return live  # the same answer is already on its way
        live.state, live.finished_at = OutboxState.CANCELLED, timezone.now()
        live.last_error = "replaced by a later decision of the board"
        live.save(update_fields=["state", "finished_at", "last_error"])
        _audit_outbox(live, "review.clouddeploy_forward_cancelled", actor)
    row = RolloutApprovalOutbox.objects.create(review=review, rollout=rollout, approved=approved)
    _audit_outbox(row, "review.clouddeploy_queued", actor, outcome=review.state)
    _queue_send(row)
    return row


def rollout_answers_write(*, review: Review, actor: Actor) -> list[RolloutApprovalOutbox]:
    """The review reached a final state: queue its answer (approve when approved,
    reject when rejected or expired) for every Cloud Deploy rollout waiting on it.

    Call inside the deciding transaction, with the review row locked. A rollout that
    already has its answer sent gets none again; an unsent earlier answer is cancelled
    and replaced. Side effects per rollout: an outbox row, audit
    `review.clouddeploy_queued` (and `review.clouddeploy_forward_cancelled` for a
    replaced one); on commit, the `reviews.clouddeploy_approve` task.
    """
    if review.state not in FINAL_STATES:
        return []
    rows = []
    for rollout in _rollouts_of(review):
        row = rollout_answer_write(review=review, rollout=rollout, actor=actor)
        if row is not None:
            rows.append(row)
    return rows


def _still_wanted(row: RolloutApprovalOutbox, review: Review, now: datetime) -> str:
    """Why the answer should no longer be sent ("" when it should)."""
    if row.approved:
        if review.state != ReviewState.APPROVED:
            return f"the review is {review.state} now"
        if review.expires_at <= now:
            return "the review's approval has lapsed"
    elif review.state not in (ReviewState.REJECTED, ReviewState.EXPIRED):
        return f"the review is {review.state} now"
    return ""


class _AnswerOutbox(Outbox[RolloutApprovalOutbox, tuple[str, RolloutInfo], ForwardResult]):
    """The answer outbox on the shared claim -> lease -> send -> record steps."""

    model = RolloutApprovalOutbox
    errors = (CloudDeployUnavailable, ValueError)

    def __init__(self, approvals: CloudDeployApprovals | None) -> None:
        self.approvals = approvals

    def missing(self, pk: int) -> ForwardResult:
        return ForwardResult(outbox_id=pk, state="missing", attempts=0)

    def claim(self, row: RolloutApprovalOutbox, now: datetime) -> ForwardResult | None:
        """Take the row for one attempt (state `sending`, lease from `attempted_at`), or
        say why not. Under the row's lock; a cancellation's audit event takes the
        chain head after it."""
        if row.state == OutboxState.SENDING:
            left = lease_left(
                taken_at=row.attempted_at, lease=timedelta(seconds=FORWARD_LEASE_SECONDS), now=now
            )
            if left is not None:  # another run is calling Cloud Deploy now
                return ForwardResult(
                    outbox_id=row.pk,
                    state=row.state,
                    attempts=row.attempts,
                    retry=True,
                    retry_in=max(1, int(left.total_seconds()) + 1),
                )
            # That run died with its call perhaps made: read the rollout before acting.
        elif row.state != OutboxState.PENDING:
            return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
        else:
            # Not locked: taking the review lock here would order locks outbox -> review,
            # the reverse of a decision's; a decision changing the review right after
            # this read cancels nothing already sent, as Cloud Deploy takes one answer.
            review = Review.objects.get(pk=row.review_id)
            why_not = _still_wanted(row, review, now)
            if why_not:
                row.state, row.finished_at, row.last_error = OutboxState.CANCELLED, now, why_not
                row.save(update_fields=["state", "finished_at", "last_error"])
                _audit_outbox(row, "review.clouddeploy_forward_cancelled", WORKER, reason=why_not)
                return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
        row.state, row.attempts, row.attempted_at = OutboxState.SENDING, row.attempts + 1, now
        row.save(update_fields=["state", "attempts", "attempted_at"])
        return None

    def send(self, row: RolloutApprovalOutbox) -> tuple[str, RolloutInfo]:
        """Read the rollout; approve or reject it only when it still waits."""
        approvals = self.approvals or clouddeploy_approvals()
        info = approvals.rollout_get(row.rollout)
        if not info.needs_approval:
            return "read", info
        return "answered", approvals.rollout_approve(row.rollout, approved=row.approved)

    def in_flight(self, row: RolloutApprovalOutbox) -> bool:
        return row.state == OutboxState.SENDING

    def taken_over(self, row: RolloutApprovalOutbox) -> ForwardResult:
        return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)

    def record(
        self,
        row: RolloutApprovalOutbox,
        *,
        outcome: tuple[str, RolloutInfo] | None,
        error: Exception | None,
        now: datetime,
    ) -> ForwardResult:
        """Record what one attempt found or did, under the row's lock; the chain head
        last (its audit event)."""
        if error is not None:
            retry = outbox_failure_record(
                row,
                error=error,
                now=now,
                max_attempts=FORWARD_MAX_ATTEMPTS,
                retry_state=OutboxState.PENDING,
                failed_state=OutboxState.FAILED,
                what="forwarding outbox",
            )
            if not retry:
                _audit_outbox(
                    row, "review.clouddeploy_forward_failed", WORKER, error=row.last_error
                )
            return ForwardResult(
                outbox_id=row.pk,
                state=row.state,
                attempts=row.attempts,
                retry=retry,
                error=row.last_error,
            )
        # Narrows the type for the checker: without an error the send returned.
        assert outcome is not None  # nosec B101
        kind, info = outcome
        if kind == "read":
            # Cloud Deploy no longer waits. Showing the board's own answer, it is ours
            # (an earlier attempt got through before it could be recorded) or the same
            # answer given in Cloud Deploy: either way the rollout has the board's answer.
            answer = "APPROVED" if row.approved else "REJECTED"
            row.approval_state = info.approval_state
            if info.approval_state == answer:
                row.state, row.last_error = OutboxState.SENT, ""
                row.sent_at = row.finished_at = info.approve_time or now
                row.save()
                _audit_outbox(
                    row,
                    "review.clouddeploy_forward_confirmed",
                    WORKER,
                    approval_state=info.approval_state,
                    after_retry=row.attempts > 1,
                )
                return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
            row.state, row.finished_at = OutboxState.SUPERSEDED, now
            row.save()
            _audit_outbox(
                row,
                "review.clouddeploy_forward_superseded",
                WORKER,
                approval_state=info.approval_state,
                matches_decision=False,
            )
            return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
        row.state, row.approval_state = OutboxState.SENT, info.approval_state
        row.sent_at = row.finished_at = now
        row.last_error = ""
        row.save()
        _audit_outbox(
            row, "review.clouddeploy_forwarded", WORKER, approval_state=info.approval_state
        )
        return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)


def _answer_claim(outbox_id: int) -> RolloutApprovalOutbox | ForwardResult:
    """The claim step alone: the row taken for one attempt (`sending`), or why not."""
    return outbox_claim(_AnswerOutbox(None), outbox_id)


def rollout_answer_send(
    *, outbox_id: int, approvals: CloudDeployApprovals | None = None
) -> ForwardResult:
    """Send one pending answer to Cloud Deploy, at most once.

    Three steps (`portal.outbox`), no lock held across the calls to Cloud Deploy (see
    the module's lock order). Claim: under the row's lock, nothing when it is no longer
    pending (or another run holds its lease: retry after the lease); cancelled when the
    review changed since (sent back to waiting, approval lapsed); otherwise the row
    becomes `sending`. Call: read the rollout; only when it still waits for approval,
    `rollout_approve` once. Record, under the row's lock again: sent; sent and
    confirmed when Cloud Deploy already shows the board's answer (an earlier attempt
    got through before it was recorded, or the same answer was given in Cloud
    Deploy); superseded when it shows another answer; a retryable failure leaves the
    row pending with the error and asks for a retry (`ForwardResult.retry`) until
    FORWARD_MAX_ATTEMPTS, then the row is failed.
    Side effects: the row; audit `review.clouddeploy_forwarded`,
    `review.clouddeploy_forward_confirmed`, `review.clouddeploy_forward_superseded`,
    `review.clouddeploy_forward_cancelled` or `review.clouddeploy_forward_failed`; the
    rollout approved or rejected in Cloud Deploy.
    """
    return outbox_send(_AnswerOutbox(approvals), outbox_id)


def rollout_answers_retry(
    *,
    actor: Actor,
    ids: list[int] | None = None,
    pending_before: datetime | None = None,
    include_failed: bool = True,
) -> list[int]:
    """Send failed answers again (all, or those in `ids`); with `pending_before`, also
    pending ones not tried since then (their task was lost: pick a time further back
    than the longest backoff, an hour). `include_failed=False` leaves failed answers
    to a person (the beat sweep only recovers lost tasks). Returns the ids.

    Each row starts a fresh round of attempts. Side effects per row: state pending
    (a `sending` row whose task died stays so: its next run reads the rollout first),
    attempts 0, audit `review.clouddeploy_forward_retried`; on commit, the send task.
    """
    queued = []
    with transaction.atomic():
        wanted = Q(state=OutboxState.FAILED) if include_failed else Q(pk__in=[])
        if pending_before is not None:
            wanted |= Q(state=OutboxState.PENDING, attempted_at__lt=pending_before) | Q(
                state=OutboxState.PENDING, attempted_at__isnull=True, created_at__lt=pending_before
            )
            # A send task that died mid-call and was not redelivered: its lease is long
            # gone; the next run reads the rollout before it acts.
            wanted |= Q(state=OutboxState.SENDING, attempted_at__lt=pending_before)
        rows = RolloutApprovalOutbox.objects.select_for_update().filter(wanted).order_by("pk")
        if ids:
            rows = rows.filter(pk__in=ids)
        for row in rows:
            previous = row.state
            if previous != OutboxState.SENDING:
                row.state = OutboxState.PENDING
            row.attempts, row.finished_at = 0, None
            row.save(update_fields=["state", "attempts", "finished_at"])
            _audit_outbox(row, "review.clouddeploy_forward_retried", actor, previous=previous)
            _queue_send(row)
            queued.append(row.pk)
    return queued

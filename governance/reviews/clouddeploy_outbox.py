"""Cloud Deploy approvals, out: the review's outcome goes back to Cloud Deploy.

When a review linked to rollouts reaches a final state, `rollout_answers_write`
(called from the review services' `_on_review_decided`, inside the deciding
transaction) writes one RolloutApprovalOutbox row per rollout and queues
`reviews.clouddeploy_approve` on commit. The task calls `rollout_answer_send`, which
reads the rollout's approvalState first and calls approve at most once.

This module sits below the review services (they call it when a review is decided);
the push intake that opens reviews is governance.reviews.clouddeploy_intake, above them.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

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
from worker.backends.clouddeploy import CloudDeployApprovals, CloudDeployUnavailable

logger = logging.getLogger(__name__)

CLOUDDEPLOY = Actor.system("clouddeploy")
WORKER = Actor.system("worker")
ACTION_REQUIRED = "Required"
# Attempts at sending one answer before the outbox row is marked failed (then only
# `manage.py clouddeploy_outbox_retry` sends it again).
FORWARD_MAX_ATTEMPTS = 8
FORWARD_BACKOFF_BASE_SECONDS = 30
FORWARD_BACKOFF_MAX_SECONDS = 3600


@dataclass(frozen=True)
class ForwardResult:
    """What one run of the send task did to an outbox row."""

    outbox_id: int
    state: str
    attempts: int
    retry: bool = False
    error: str = ""


def forward_backoff_seconds(attempts: int) -> int:
    """Seconds to wait before the next attempt after `attempts` failed ones:
    30 s, 1 min, 2 min, ... capped at an hour (about 1 h 4 min over 8 attempts)."""
    return min(
        FORWARD_BACKOFF_MAX_SECONDS, FORWARD_BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1)
    )


def _rollouts_of(review: Review) -> list[str]:
    rollouts = set(
        PubSubMessage.objects.filter(review=review, action=ACTION_REQUIRED)
        .exclude(rollout="")
        .values_list("rollout", flat=True)
    )
    if review.source == ReviewSource.CLOUD_DEPLOY and review.external_ref:
        rollouts.add(review.external_ref)
    return sorted(rollouts)


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


def rollout_answer_write(
    *, review: Review, rollout: str, actor: Actor
) -> RolloutApprovalOutbox | None:
    """Queue the decided review's answer for one rollout (None when Cloud Deploy has
    its answer already). Call inside the deciding transaction, review row locked.

    Side effects: an outbox row, audit `review.clouddeploy_queued` (and
    `review.clouddeploy_forward_cancelled` for a replaced unsent answer); on commit,
    the `reviews.clouddeploy_approve` task.
    """
    approved = review.state == ReviewState.APPROVED
    live = (
        RolloutApprovalOutbox.objects.select_for_update()
        .filter(rollout=rollout, state__in=OUTBOX_LIVE_STATES)
        .first()
    )
    if live is not None:
        if live.state in (OutboxState.SENT, OutboxState.SUPERSEDED):
            return None  # Cloud Deploy has its answer: a rollout is approved at most once
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


def rollout_answer_send(
    *, outbox_id: int, approvals: CloudDeployApprovals | None = None
) -> ForwardResult:
    """Send one pending answer to Cloud Deploy, at most once.

    Under the outbox row's lock: nothing when it is no longer pending; cancelled when
    the review changed since (sent back to waiting, approval lapsed); superseded when
    Cloud Deploy no longer waits for approval (read first: someone answered in Cloud
    Deploy, or an earlier attempt got through before we could record it); otherwise
    `rollout_approve` once. A retryable failure leaves the row pending with the error
    and asks for a retry (`ForwardResult.retry`) until FORWARD_MAX_ATTEMPTS, then the
    row is failed.
    The lock is held across the calls to Cloud Deploy on purpose: a second run of the
    task (at-least-once delivery of the task message) waits and then finds it sent.
    Side effects: the row; audit `review.clouddeploy_forwarded`,
    `review.clouddeploy_forward_superseded`, `review.clouddeploy_forward_cancelled` or
    `review.clouddeploy_forward_failed`; the rollout approved or rejected in Cloud Deploy.
    """
    with transaction.atomic():
        row = RolloutApprovalOutbox.objects.select_for_update().filter(pk=outbox_id).first()
        if row is None:
            return ForwardResult(outbox_id=outbox_id, state="missing", attempts=0)
        if row.state != OutboxState.PENDING:
            return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
        # Not locked: taking the review lock here would order locks outbox -> review,
        # the reverse of a decision's; a decision changing the review right after this
        # read cancels nothing already sent, as Cloud Deploy takes one answer anyway.
        review = Review.objects.get(pk=row.review_id)
        now = timezone.now()
        why_not = _still_wanted(row, review, now)
        if why_not:
            row.state, row.finished_at, row.last_error = OutboxState.CANCELLED, now, why_not
            row.save(update_fields=["state", "finished_at", "last_error"])
            _audit_outbox(row, "review.clouddeploy_forward_cancelled", WORKER, reason=why_not)
            return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)

        row.attempts += 1
        row.attempted_at = timezone.now()
        try:
            approvals = approvals or clouddeploy_approvals()
            info = approvals.rollout_get(row.rollout)
            row.approval_state = info.approval_state
            if not info.needs_approval:
                row.state, row.finished_at = OutboxState.SUPERSEDED, timezone.now()
                row.save()
                answer = "APPROVED" if row.approved else "REJECTED"
                _audit_outbox(
                    row,
                    "review.clouddeploy_forward_superseded",
                    WORKER,
                    approval_state=info.approval_state,
                    matches_decision=info.approval_state == answer,
                )
                return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
            after = approvals.rollout_approve(row.rollout, approved=row.approved)
        except (CloudDeployUnavailable, ValueError) as exc:
            retryable = isinstance(exc, CloudDeployUnavailable) and exc.retryable
            row.last_error = str(exc)[:1000]
            if retryable and row.attempts < FORWARD_MAX_ATTEMPTS:
                row.save()
                logger.warning(
                    "forwarding outbox %s failed (attempt %s), will retry: %s",
                    row.pk,
                    row.attempts,
                    exc,
                )
                return ForwardResult(
                    outbox_id=row.pk,
                    state=row.state,
                    attempts=row.attempts,
                    retry=True,
                    error=row.last_error,
                )
            row.state, row.finished_at = OutboxState.FAILED, timezone.now()
            row.save()
            _audit_outbox(row, "review.clouddeploy_forward_failed", WORKER, error=row.last_error)
            logger.error("forwarding outbox %s failed for good: %s", row.pk, exc)
            return ForwardResult(
                outbox_id=row.pk, state=row.state, attempts=row.attempts, error=row.last_error
            )
        row.state, row.approval_state = OutboxState.SENT, after.approval_state
        row.sent_at = row.finished_at = timezone.now()
        row.last_error = ""
        row.save()
        _audit_outbox(
            row, "review.clouddeploy_forwarded", WORKER, approval_state=after.approval_state
        )
        return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)


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

    Each row starts a fresh round of attempts. Side effects per row: state pending,
    attempts 0, audit `review.clouddeploy_forward_retried`; on commit, the send task.
    """
    queued = []
    with transaction.atomic():
        wanted = Q(state=OutboxState.FAILED) if include_failed else Q(pk__in=[])
        if pending_before is not None:
            wanted |= Q(state=OutboxState.PENDING, attempted_at__lt=pending_before) | Q(
                state=OutboxState.PENDING, attempted_at__isnull=True, created_at__lt=pending_before
            )
        rows = RolloutApprovalOutbox.objects.select_for_update().filter(wanted).order_by("pk")
        if ids:
            rows = rows.filter(pk__in=ids)
        for row in rows:
            previous = row.state
            row.state, row.attempts, row.finished_at = OutboxState.PENDING, 0, None
            row.save(update_fields=["state", "attempts", "finished_at"])
            _audit_outbox(row, "review.clouddeploy_forward_retried", actor, previous=previous)
            _queue_send(row)
            queued.append(row.pk)
    return queued

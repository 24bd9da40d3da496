"""Cloud Deploy approvals: a rollout waiting for approval opens a review, and the
review's outcome goes back to Cloud Deploy.

In: Cloud Deploy publishes to the `clouddeploy-approvals` topic; a push subscription
posts each message to `POST /hooks/clouddeploy` (governance.reviews.hooks), which
proves the push is Google's and hands the message to `clouddeploy_push_receive`. A
message with `Action: Required` names the rollout; we read it and its release with
the Cloud Deploy API, find the model version the release declares, and open (or join)
the review of that version for the portal target the Cloud Deploy target maps to
(settings.CLOUD_DEPLOY_TARGETS). Messages name the rollout with the project number
(`projects/0123456789/...`), people and tests often with the project id: the name
kept (messages, reviews' external_ref, outbox rows) is the one Cloud Deploy's API
answers with when we read the rollout, so both forms meet on one name.

Out: when a review linked to rollouts reaches a final state, `rollout_answers_write`
(called from the review services' `_on_review_decided`, inside the deciding
transaction) writes one RolloutApprovalOutbox row per rollout and queues
`reviews.clouddeploy_approve` on commit. The task calls `rollout_answer_send`, which
reads the rollout's approvalState first and calls approve at most once.

Lock order (the portal's one order, see README "Audit ledger"): the version row, then
its review rows, then their outbox rows, and the audit chain head last; no lock is
held across a call to Cloud Deploy. A decision and the hook take the version's outbox
rows (`rollout_answers_lock`) right after the review, before their first audit event.
The send task claims its row in a short transaction (state `sending` with a lease,
FORWARD_LEASE_SECONDS), calls Cloud Deploy holding nothing, then records the result
in a second short transaction that locks the row first and the chain head last (by
auditing). A task killed while its call is in flight leaves the row `sending`; once
the lease has run out the next run reads the rollout and, when Cloud Deploy shows the
board's own answer, records it as sent (`review.clouddeploy_forward_confirmed`).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import google.auth.exceptions
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from governance.models import ModelVersion
from governance.reviews.choices import FINAL_STATES, LIVE_STATES, ReviewSource, ReviewState
from governance.reviews.models import (
    OUTBOX_LIVE_STATES,
    OutboxState,
    PubSubMessage,
    PushOutcome,
    Review,
    RolloutApprovalOutbox,
)
from governance.reviews.services.gates import gate_state_lock
from governance.reviews.services.reviews import review_open
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.pubsub import PushMessage
from portal.security.services import refusal_source, security_refusal_record
from worker.backends.clouddeploy import (
    CloudDeployApprovals,
    CloudDeployUnavailable,
    ReleaseInfo,
    RolloutInfo,
)

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
# Cloud Deploy answers these for a rollout or release that does not exist or a name it
# cannot read: asking again later will not change the answer.
_FINAL_HTTP_STATUSES = frozenset({400, 404})


class PushDeferred(Exception):
    """Cloud Deploy could not be read now; the hook answers 503 so Pub/Sub redelivers
    the message later (nothing about it was recorded)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PushReceipt:
    """What the hook did with one message; `duplicate` when it was a redelivery."""

    record: PubSubMessage
    duplicate: bool


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


def clouddeploy_approvals() -> CloudDeployApprovals:
    """The Cloud Deploy adapter, configured from settings."""
    endpoint = settings.CLOUD_DEPLOY_API_ENDPOINT
    credentials = None
    # Only a stand-in server (tests, local emulators) runs without Google credentials;
    # otherwise the client library finds the workload identity itself.
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    try:
        return CloudDeployApprovals(api_endpoint=endpoint or None, credentials=credentials)
    except google.auth.exceptions.GoogleAuthError as exc:
        # No workload identity (e.g. the embedded demo): nothing to retry until configured.
        raise CloudDeployUnavailable(
            f"Cloud Deploy client: no Google credentials: {exc}", retryable=False
        ) from exc


def forward_backoff_seconds(attempts: int) -> int:
    """Seconds to wait before the next attempt after `attempts` failed ones:
    30 s, 1 min, 2 min, ... capped at an hour (about 1 h 4 min over 8 attempts)."""
    return min(
        FORWARD_BACKOFF_MAX_SECONDS, FORWARD_BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1)
    )


# --- in: the push hook -----------------------------------------------------------------


def clouddeploy_push_refuse(*, reason: str, status: int, client_ip: str | None) -> None:
    """Count a push the hook turned away before reading it (no proof it is Google's,
    a body that is no push envelope, or a client over its refusal limit). Anyone can
    send those, so they are counted per client address and window: only the window's
    first is audited, with its reason. The reason never contains the token.

    Side effects: the refusal window's count; for a window's first refusal, audit
    `hook.clouddeploy.refused` (or `hook.clouddeploy.rate_limited` for a 429; actor
    anonymous).
    """
    action = "hook.clouddeploy.rate_limited" if status == 429 else "hook.clouddeploy.refused"
    security_refusal_record(
        kind=action,
        source=refusal_source(Actor.anonymous(), client_ip),
        action=action,
        actor=Actor.anonymous(),
        details={"reason": reason[:300], "status": status},
        object_type="hook",
        object_id="clouddeploy",
        client_ip=client_ip,
    )


def _rollout_name(attributes: dict[str, str]) -> str:
    if attributes.get("Rollout"):
        return attributes["Rollout"]
    parts = ("ProjectNumber", "Location", "DeliveryPipelineId", "ReleaseId", "RolloutId")
    if all(attributes.get(part) for part in parts):
        project, location, pipeline, release, rollout = (attributes[p] for p in parts)
        return (
            f"projects/{project}/locations/{location}/deliveryPipelines/{pipeline}"
            f"/releases/{release}/rollouts/{rollout}"
        )
    return ""


def _message_create(
    message: PushMessage, *, outcome: str, reason: str, rollout: str
) -> PubSubMessage | None:
    """The message's record, or None when a concurrent delivery of the same message
    created it first (on PostgreSQL this waits for that delivery's transaction)."""
    try:
        with transaction.atomic():
            return PubSubMessage.objects.create(
                message_id=message.message_id,
                subscription=message.subscription[:300],
                published_at=message.publish_time,
                attributes=message.attributes,
                action=message.attributes.get("Action", "")[:40],
                rollout=rollout[:300],
                outcome=outcome,
                reason=reason[:500],
            )
    except IntegrityError:
        return None


def _duplicate(message: PushMessage) -> PushReceipt:
    return PushReceipt(
        record=PubSubMessage.objects.get(message_id=message.message_id), duplicate=True
    )


def _record(
    message: PushMessage,
    *,
    outcome: str,
    reason: str = "",
    rollout: str = "",
    client_ip: str | None,
) -> PushReceipt:
    """Keep the message with its outcome, and audit it."""
    with transaction.atomic():
        record = _message_create(message, outcome=outcome, reason=reason, rollout=rollout)
        if record is None:
            return _duplicate(message)
        _audit_message(record, client_ip)
    return PushReceipt(record=record, duplicate=False)


def _audit_message(record: PubSubMessage, client_ip: str | None) -> None:
    refused = record.outcome == PushOutcome.REFUSED
    audit_record(
        action="hook.clouddeploy.refused" if refused else "hook.clouddeploy.received",
        actor=CLOUDDEPLOY,
        object_type="pubsub_message",
        object_id=record.message_id,
        payload={
            "action": record.action,
            "rollout": record.rollout,
            "outcome": record.outcome,
            "reason": record.reason,
            "review": record.review_id,
            "subscription": record.subscription,
        },
        client_ip=client_ip,
    )


def _read_cloud_deploy(
    approvals: CloudDeployApprovals | None, rollout: str
) -> tuple[RolloutInfo, ReleaseInfo] | str:
    """The rollout and its release, or why not when asking again cannot help;
    PushDeferred when it may (Cloud Deploy away, or our credentials refused)."""
    try:
        approvals = approvals or clouddeploy_approvals()
        info = approvals.rollout_get(rollout)
        return info, approvals.release_get(info.release_name)
    except ValueError as exc:
        return str(exc)
    except CloudDeployUnavailable as exc:
        if exc.status_code in _FINAL_HTTP_STATUSES:
            return str(exc)
        raise PushDeferred(str(exc)) from exc


def clouddeploy_push_receive(
    *,
    message: PushMessage,
    approvals: CloudDeployApprovals | None = None,
    client_ip: str | None = None,
) -> PushReceipt:
    """Act on one verified Pub/Sub message from the `clouddeploy-approvals` topic.

    A message already received (same messageId) does nothing again. `Action: Required`
    opens (or joins) the review of the version the rollout's release declares, for the
    portal target its Cloud Deploy target maps to; other actions are only recorded.
    A message that cannot open a review (unknown target, model or version, a release
    deploying another image than the version's, a rollout Cloud Deploy does not know)
    is recorded as refused: the hook still acknowledges it, because redelivering it
    would not change the answer, only repeat it until Pub/Sub gives up; the refusal in
    the ledger is where an operator sees it, and the rollout keeps waiting in Cloud
    Deploy until someone answers it there or registers the version and deploys again.
    Raises PushDeferred when Cloud Deploy cannot be read now (nothing recorded).

    Side effects: a PubSubMessage row; audit `hook.clouddeploy.received` or
    `hook.clouddeploy.refused`; through review_open, a review (audit `review.opened`);
    when the joined review is already approved, the answer's outbox row.
    """
    existing = PubSubMessage.objects.filter(message_id=message.message_id).first()
    if existing is not None:
        logger.info("pubsub message %s delivered again; acknowledged", message.message_id)
        return PushReceipt(record=existing, duplicate=True)

    attributes = message.attributes
    action = attributes.get("Action", "")
    rollout = _rollout_name(attributes)

    def refuse(reason: str) -> PushReceipt:
        return _record(
            message,
            outcome=PushOutcome.REFUSED,
            reason=reason,
            rollout=rollout,
            client_ip=client_ip,
        )

    if action != ACTION_REQUIRED:
        reason = f"action {action!r} needs nothing from the portal" if action else "no Action"
        return _record(
            message,
            outcome=PushOutcome.IGNORED,
            reason=reason,
            rollout=rollout,
            client_ip=client_ip,
        )
    if not rollout:
        return refuse("the message names no rollout")

    read = _read_cloud_deploy(approvals, rollout)
    if isinstance(read, str):
        return refuse(f"Cloud Deploy could not show the rollout: {read}")
    info, release = read
    # Keep the rollout under the name Cloud Deploy answers with: a message names it with
    # the project number, other callers with the project id (one rollout, one name).
    rollout = info.name or rollout
    if not info.needs_approval:
        return _record(
            message,
            outcome=PushOutcome.IGNORED,
            reason=f"the rollout no longer waits for approval ({info.approval_state})",
            rollout=rollout,
            client_ip=client_ip,
        )
    target_id = info.target_id or attributes.get("TargetId", "")
    target = settings.CLOUD_DEPLOY_TARGETS.get(target_id)
    if target is None:
        return refuse(f"Cloud Deploy target {target_id!r} maps to no portal target")
    if not release.model or not release.model_version:
        return refuse("the release names no model and version (annotations or labels)")
    version = (
        ModelVersion.objects.select_related("model")
        .filter(model__slug=release.model, version=release.model_version)
        .first()
    )
    if version is None:
        return refuse(f"no registered version {release.model} {release.model_version}")
    if (
        version.image_digest
        and release.image_digests
        and version.image_digest not in release.image_digests
    ):
        return refuse(
            f"the release deploys {', '.join(release.image_digests)}, "
            f"not the version's image {version.image_digest}"
        )
    return _review_join(
        message, version=version, target=target, rollout=rollout, client_ip=client_ip
    )


def _review_join(
    message: PushMessage,
    *,
    version: ModelVersion,
    target: str,
    rollout: str,
    client_ip: str | None,
) -> PushReceipt:
    with transaction.atomic():
        record = _message_create(
            message, outcome=PushOutcome.REVIEW_OPENED, reason="", rollout=rollout
        )
        if record is None:
            return _duplicate(message)
        # Lock order: the version, its live review for the target, its gate row, the
        # version's outbox rows, and only then (review_open, _audit_message) the chain head. A
        # send task holds an outbox row while it audits its result: taking the row
        # after the chain head here would wait on it in a circle.
        ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        Review.objects.select_for_update(of=("self",)).filter(
            version=version, target=target, state__in=LIVE_STATES
        ).first()
        gate_state_lock(version_id=version.pk, target=target)
        rollout_answers_lock(version_id=version.pk)
        try:
            review, created = review_open(
                version=version,
                target=target,
                requested_by_actor=CLOUDDEPLOY,
                source=ReviewSource.CLOUD_DEPLOY,
                external_ref=rollout,
                client_ip=client_ip,
            )
        except ValidationError as exc:
            record.outcome = PushOutcome.REFUSED
            record.reason = "; ".join(exc.messages)[:500]
            record.save(update_fields=["outcome", "reason"])
            _audit_message(record, client_ip)
            return PushReceipt(record=record, duplicate=False)
        # The review lock (review_open holds the version's) orders this link against a
        # decision: either the decision sees the link when it writes the answers, or we
        # see the decided state here and write the answer ourselves.
        review = Review.objects.select_for_update(of=("self",)).get(pk=review.pk)
        record.review = review
        if not created:
            record.outcome = PushOutcome.REVIEW_EXISTING
        record.save(update_fields=["review", "outcome"])
        _audit_message(record, client_ip)
        if review.state in FINAL_STATES:
            _answer_write(review=review, rollout=rollout, actor=CLOUDDEPLOY)
    return PushReceipt(record=record, duplicate=False)


# --- out: the outbox -------------------------------------------------------------------


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
    from governance.reviews.tasks import clouddeploy_approve

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


def _answer_write(*, review: Review, rollout: str, actor: Actor) -> RolloutApprovalOutbox | None:
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
        row = _answer_write(review=review, rollout=rollout, actor=actor)
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


def _answer_claim(outbox_id: int) -> RolloutApprovalOutbox | ForwardResult:
    """Take the row for one attempt (state `sending`, lease from `attempted_at`), or
    say why not. A short transaction: the row's lock, then the chain head (a
    cancellation's audit event)."""
    with transaction.atomic():
        row = RolloutApprovalOutbox.objects.select_for_update().filter(pk=outbox_id).first()
        if row is None:
            return ForwardResult(outbox_id=outbox_id, state="missing", attempts=0)
        now = timezone.now()
        lease = timedelta(seconds=FORWARD_LEASE_SECONDS)
        if row.state == OutboxState.SENDING:
            held_until = (row.attempted_at or now) + lease
            if held_until > now:  # another run is calling Cloud Deploy now
                return ForwardResult(
                    outbox_id=row.pk,
                    state=row.state,
                    attempts=row.attempts,
                    retry=True,
                    retry_in=max(1, int((held_until - now).total_seconds()) + 1),
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
    return row


def _answer_record(
    row: RolloutApprovalOutbox,
    *,
    read: RolloutInfo | None = None,
    after: RolloutInfo | None = None,
    error: Exception | None = None,
) -> ForwardResult:
    """Record what one attempt found or did, in a short transaction: the row's lock
    first, the chain head last (its audit event)."""
    attempt = row.attempts
    with transaction.atomic():
        row = RolloutApprovalOutbox.objects.select_for_update().get(pk=row.pk)
        if row.state != OutboxState.SENDING or row.attempts != attempt:
            # Our lease ran out and another run took the row over: its record stands.
            return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
        now = timezone.now()
        if error is not None:
            retryable = isinstance(error, CloudDeployUnavailable) and error.retryable
            row.last_error = str(error)[:1000]
            if retryable and row.attempts < FORWARD_MAX_ATTEMPTS:
                row.state = OutboxState.PENDING
                row.save()
                logger.warning(
                    "forwarding outbox %s failed (attempt %s), will retry: %s",
                    row.pk,
                    row.attempts,
                    error,
                )
                return ForwardResult(
                    outbox_id=row.pk,
                    state=row.state,
                    attempts=row.attempts,
                    retry=True,
                    error=row.last_error,
                )
            row.state, row.finished_at = OutboxState.FAILED, now
            row.save()
            _audit_outbox(row, "review.clouddeploy_forward_failed", WORKER, error=row.last_error)
            logger.error("forwarding outbox %s failed for good: %s", row.pk, error)
            return ForwardResult(
                outbox_id=row.pk, state=row.state, attempts=row.attempts, error=row.last_error
            )
        if read is not None:
            # Cloud Deploy no longer waits. Showing the board's own answer, it is ours
            # (an earlier attempt got through before it could be recorded) or the same
            # answer given in Cloud Deploy: either way the rollout has the board's answer.
            answer = "APPROVED" if row.approved else "REJECTED"
            row.approval_state = read.approval_state
            if read.approval_state == answer:
                row.state, row.last_error = OutboxState.SENT, ""
                row.sent_at = row.finished_at = read.approve_time or now
                row.save()
                _audit_outbox(
                    row,
                    "review.clouddeploy_forward_confirmed",
                    WORKER,
                    approval_state=read.approval_state,
                    after_retry=row.attempts > 1,
                )
                return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
            row.state, row.finished_at = OutboxState.SUPERSEDED, now
            row.save()
            _audit_outbox(
                row,
                "review.clouddeploy_forward_superseded",
                WORKER,
                approval_state=read.approval_state,
                matches_decision=False,
            )
            return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)
        # Narrows the type for the checker: every path without an answer returned above.
        assert after is not None  # nosec B101
        row.state, row.approval_state = OutboxState.SENT, after.approval_state
        row.sent_at = row.finished_at = now
        row.last_error = ""
        row.save()
        _audit_outbox(
            row, "review.clouddeploy_forwarded", WORKER, approval_state=after.approval_state
        )
        return ForwardResult(outbox_id=row.pk, state=row.state, attempts=row.attempts)


def rollout_answer_send(
    *, outbox_id: int, approvals: CloudDeployApprovals | None = None
) -> ForwardResult:
    """Send one pending answer to Cloud Deploy, at most once.

    Three steps, no lock held across the calls to Cloud Deploy (see the module's lock
    order). Claim: under the row's lock, nothing when it is no longer pending (or
    another run holds its lease: retry after the lease); cancelled when the review
    changed since (sent back to waiting, approval lapsed); otherwise the row becomes
    `sending`. Call: read the rollout; only when it still waits for approval,
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
    claimed = _answer_claim(outbox_id)
    if isinstance(claimed, ForwardResult):
        return claimed
    row = claimed
    try:
        approvals = approvals or clouddeploy_approvals()
        info = approvals.rollout_get(row.rollout)
        if not info.needs_approval:
            return _answer_record(row, read=info)
        after = approvals.rollout_approve(row.rollout, approved=row.approved)
    except (CloudDeployUnavailable, ValueError) as exc:
        return _answer_record(row, error=exc)
    return _answer_record(row, after=after)


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

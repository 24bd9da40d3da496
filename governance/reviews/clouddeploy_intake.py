"""Cloud Deploy approvals, in: a rollout waiting for approval opens a review.

Cloud Deploy publishes to the `clouddeploy-approvals` topic; a push subscription
posts each message to `POST /hooks/clouddeploy` (governance.reviews.hooks), which
proves the push is Google's and hands the message to `clouddeploy_push_receive`. A
message with `Action: Required` names the rollout; we read it and its release with
the Cloud Deploy API, find the model version the release declares, and open (or join)
the review of that version for the portal target the Cloud Deploy target maps to
(settings.CLOUD_DEPLOY_TARGETS). Messages name the rollout with the project number
(`projects/0123456789/...`), people and tests often with the project id: the name
kept (messages, reviews' external_ref, outbox rows) is the one Cloud Deploy's API
answers with when we read the rollout, so both forms meet on one name.

Lock order (the portal's one order, see README "Audit ledger"): joining a review takes
the version row, its live review, then the version's outbox rows
(`rollout_answers_lock`), before the first audit event; no lock is held across a call
to Cloud Deploy.

This module sits above the review services (it opens reviews); the answer going back
is the outbox's (governance.reviews.clouddeploy_outbox), below them.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from governance.models import ModelVersion
from governance.reviews.choices import FINAL_STATES, LIVE_STATES, PushOutcome, ReviewSource
from governance.reviews.clients import clouddeploy_approvals
from governance.reviews.clouddeploy_outbox import (
    ACTION_REQUIRED,
    CLOUDDEPLOY,
    rollout_answer_write,
    rollout_answers_lock,
)
from governance.reviews.models import PubSubMessage, Review
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
            rollout_answer_write(review=review, rollout=rollout, actor=CLOUDDEPLOY)
    return PushReceipt(record=record, duplicate=False)

"""Writes for rollouts: start one behind the gate, drive it step by step (`rollout_tick`),
and the people's decisions (promote, pause, abort, roll back).

Two kinds of write, never mixed in one transaction:

* a *decision* changes the rollout's desired state (next step, paused, rolled back)
  under the rollout's row lock, bumps `revision`, clears `synced` and records its audit
  event, all in one transaction;
* *applying* hands the desired state to the backend (the model server, Cloud Deploy)
  with no lock held, then marks the rollout synced only if no decision came in between
  (same revision).

Lock order, as everywhere in the portal: the rollout row first, the audit chain head
last (audit_record takes it). A worker killed after a decision re-applies it (the
backends' apply is idempotent); one killed before leaves the decision to the next
tick, which finds the same step and decides it once (the revision check and the unique
step record stop a second).
"""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.models import ModelVersion, TargetAssignment
from governance.reviews.gates import gate_attestation
from governance.reviews.selectors import gate_answer
from governance.rollouts.analysis import Analysis, canary_analyse
from governance.rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    REVERTED_STATES,
    AnalysisResult,
    RolloutBackendName,
    RolloutState,
)
from governance.rollouts.models import CanaryPolicy, Rollout, RolloutStep
from governance.rollouts.notifications import rollout_transition_notify
from governance.rollouts.signals import rollout_rolled_back
from governance.services.registry import target_assign
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.security.services import domain_refusal_record
from worker.backends.prometheus import PrometheusReader
from worker.backends.rollouts import (
    PHASE_CANARY,
    PHASE_PROMOTE,
    PHASE_REVERT,
    RolloutBackend,
    RolloutBackendError,
    RolloutOutsideFailed,
    RolloutPlan,
)

logger = logging.getLogger(__name__)
SYSTEM = Actor.system("rollouts")


class RolloutRefused(ValidationError):
    """A rollout may not start or change; `code` says why (no_gate, forbidden, active,
    state, no_stable). `state` is the rollout's state when that is why (code state)."""

    def __init__(self, message: str, *, code: str, field: str = "version", state: str = "") -> None:
        super().__init__({field: message})
        self.code = code
        self.message_text = message
        self.state = state

    @property
    def is_state_conflict(self) -> bool:
        """Refused because of what is recorded (the rollout's state, another active
        rollout), not because of who asks or what was sent: a 409."""
        return self.code in ("state", "active")


def rollout_backend() -> RolloutBackend:
    """The backend the settings choose."""
    if settings.ROLLOUTS_BACKEND == RolloutBackendName.LOCAL:
        from worker.backends.rollouts_local import LocalRolloutBackend  # noqa: PLC0415 -- slow

        return LocalRolloutBackend(
            routing_file=settings.SERVING_ROUTING_FILE,
            server_url=settings.SERVING_URL,
            ready_timeout=settings.SERVING_READY_TIMEOUT,
        )
    if settings.ROLLOUTS_BACKEND == RolloutBackendName.CLOUD_DEPLOY:
        from worker.backends.rollouts_clouddeploy import (  # noqa: PLC0415 -- slow
            CloudDeployRolloutBackend,
        )

        return CloudDeployRolloutBackend(
            pipeline_template=settings.CLOUD_DEPLOY_PIPELINE_TEMPLATE,
            # CLOUD_DEPLOY_TARGETS maps Cloud Deploy's target ids to the portal's.
            target_ids={
                portal: outside for outside, portal in settings.CLOUD_DEPLOY_TARGETS.items()
            },
            image_name=settings.CLOUD_DEPLOY_IMAGE_NAME,
            skaffold_config_uri=settings.CLOUD_DEPLOY_SKAFFOLD_CONFIG_URI,
            skaffold_config_path=settings.CLOUD_DEPLOY_SKAFFOLD_CONFIG_PATH,
            api_endpoint=settings.CLOUD_DEPLOY_API_ENDPOINT or None,
            ready_timeout=settings.CLOUD_DEPLOY_READY_TIMEOUT,
        )
    raise ValidationError({"backend": f"no rollout backend {settings.ROLLOUTS_BACKEND!r}"})


def default_strategy(*, target: str) -> dict[str, Any]:
    """Steps and bake time from the settings; the canary thresholds from the target's
    CanaryPolicy (the settings' ROLLOUT_THRESHOLDS when the target has none)."""
    policy = CanaryPolicy.objects.filter(target=target).first()
    return {
        "steps": list(settings.ROLLOUT_STEPS),
        "bake_seconds": settings.ROLLOUT_BAKE_SECONDS,
        "thresholds": policy.thresholds() if policy else dict(settings.ROLLOUT_THRESHOLDS),
    }


def _transition(
    rollout: Rollout,
    action: str,
    actor: Actor,
    client_ip: str | None,
    *,
    analysis: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Audit a decision, tell people about it, and announce a rollback to the apps that
    listen (monitoring opens an incident). Inside the decision's transaction."""
    if analysis is not None:
        extra["analysis"] = analysis
    _audit(rollout, action, actor, client_ip, **extra)
    rollout_transition_notify(rollout=rollout, action=action, actor=actor)
    if rollout.state in (RolloutState.ROLLED_BACK, RolloutState.FAILED):
        rollout_rolled_back.send(
            sender=Rollout,
            rollout=rollout,
            automatic=actor == SYSTEM,
            reason=rollout.outcome,
            analysis=analysis,
            actor=actor,
        )


def _audit(rollout: Rollout, action: str, actor: Actor, client_ip: str | None, **extra: Any):
    audit_record(
        action=action,
        actor=actor,
        object_type="rollout",
        object_id=rollout.pk,
        payload={
            "model": rollout.model.slug,
            "version": rollout.version.version,
            "target": rollout.target,
            "state": rollout.state,
            "step": rollout.step_index,
            "weight": rollout.weight,
            **extra,
        },
        client_ip=client_ip,
    )


def _refuse(
    *,
    version: ModelVersion,
    target: str,
    actor: Actor,
    code: str,
    message: str,
    client_ip: str | None,
) -> RolloutRefused:
    """Count a refused start as the portal counts every refusal (portal.security: per
    kind `domain.rollout_<code>`, actor and window, the window's first one audited as
    `rollout.refused`; it stays recorded though nothing else happens) and return the
    exception to raise."""
    domain_refusal_record(
        code=f"rollout_{code}",
        reason=message,
        actor=actor,
        object_type="model_version",
        object_id=version.pk,
        client_ip=client_ip,
        action="rollout.refused",
        details={"model": version.model.slug, "version": version.version, "target": target},
    )
    return RolloutRefused(message, code=code)


def rollout_start(
    *,
    version: ModelVersion,
    target: str,
    actor: Actor,
    allowed: bool = True,
    strategy: dict[str, Any] | None = None,
    client_ip: str | None = None,
    queue: bool = True,
) -> Rollout:
    """Start shipping `version` to `target` as a canary.

    Refused (RolloutRefused, audited as `rollout.refused`) when the caller may not
    (`allowed` false: the view's or API's permission check), when the gate does not let
    the version deploy to the target at this moment, when nothing serves the target yet
    to compare the canary with, or when a rollout of the model to the target is active
    (a database constraint decides races).
    Side effects: a Rollout (pending) with the gate's attestation; audit
    `rollout.started`; the tick task queued on commit.
    """
    version = ModelVersion.objects.select_related("model").get(pk=version.pk)
    refuse = dict(version=version, target=target, actor=actor, client_ip=client_ip)
    if not allowed:
        raise _refuse(
            **refuse, code="forbidden", message="Only DevOps and portal admins start rollouts."
        )
    answer = gate_answer(model_slug=version.model.slug, version=version.version, target=target)
    if not answer.allowed:
        raise _refuse(
            **refuse,
            code="no_gate",
            message=f"The board has not approved {version.model.slug} {version.version} "
            f"for {target} ({answer.state.replace('_', ' ')}).",
        )
    current = (
        TargetAssignment.objects.select_related("version")
        .filter(model_id=version.model_id, target=target)
        .first()
    )
    if current is None or current.version_id == version.pk:
        what = "nothing serves it yet" if current is None else "the version serves it already"
        raise _refuse(**refuse, code="no_stable", message=f"No canary to {target}: {what}.")
    if Rollout.objects.filter(
        model_id=version.model_id, target=target, state__in=ACTIVE_ROLLOUT_STATES
    ).exists():
        raise _refuse(
            **refuse,
            code="active",
            message=f"A rollout of {version.model.slug} to {target} is active.",
        )
    strategy = strategy or default_strategy(target=target)
    try:
        with transaction.atomic():
            rollout = Rollout.objects.create(
                model=version.model,
                version=version,
                target=target,
                stable_version=current.version,
                backend=settings.ROLLOUTS_BACKEND,
                strategy=strategy,
                weight=strategy["steps"][0],
                review_id=answer.review_id,
                attestation=gate_attestation(answer=answer)[0],
                requested_by=actor.id,
            )
            RolloutStep.objects.create(rollout=rollout, index=0, weight=rollout.weight)
            _transition(
                rollout,
                "rollout.started",
                actor,
                client_ip,
                stable=current.version.version,
                review=rollout.review_id,
                steps=strategy["steps"],
                thresholds=strategy.get("thresholds", {}),
            )
            if queue:
                rollout_id = rollout.pk
                transaction.on_commit(lambda: rollout_queue_tick(rollout_id=rollout_id))
    except IntegrityError:
        raise _refuse(
            **refuse,
            code="active",
            message=f"A rollout of {version.model.slug} to {target} is active.",
        ) from None
    return rollout


def rollout_queue_tick(*, rollout_id: int, countdown: float = 0) -> None:
    from governance.rollouts.tasks import tick  # noqa: PLC0415 -- task

    tick.apply_async(args=[rollout_id], countdown=countdown)


def _plan(rollout: Rollout) -> RolloutPlan:
    if rollout.state in (RolloutState.PENDING, RolloutState.PROGRESSING, RolloutState.PAUSED):
        phase = PHASE_CANARY
    elif rollout.state == RolloutState.SUCCEEDED:
        phase = PHASE_PROMOTE
    else:
        phase = PHASE_REVERT
    return RolloutPlan(
        rollout_id=rollout.pk,
        model=rollout.model.slug,
        kind=rollout.model.kind,
        target=rollout.target,
        phase=phase,
        version=rollout.version.version,
        artifact_uri=rollout.version.artifact_uri,
        image_digest=rollout.version.image_digest,
        stable_version=rollout.stable_version.version,
        stable_artifact_uri=rollout.stable_version.artifact_uri,
        weight=rollout.weight,
        external_ref=rollout.external_ref,
        image_uri=rollout.version.image_uri,
        steps=tuple(rollout.steps),
    )


def _locked(rollout_id: int) -> Rollout:
    return (
        Rollout.objects.select_for_update(of=("self",))
        .select_related("model", "version", "stable_version")
        .get(pk=rollout_id)
    )


def _apply(rollout: Rollout, backend: RolloutBackend, now: Any) -> Rollout:
    """Hand the desired state to the backend (no lock held), then mark it synced if no
    decision came in meanwhile. Side effects: audit `rollout.applied` (pending ->
    progressing, steps reached, promoted, reverted); on success the target assignment."""
    seen = rollout.revision
    try:
        reference = backend.apply(_plan(rollout))
    except RolloutOutsideFailed as error:
        logger.warning("rollout %s failed in the outside system: %s", rollout.pk, error)
        return _fail(rollout, seen, str(error))
    except RolloutBackendError as error:
        logger.warning("rollout %s: the backend did not take the change: %s", rollout.pk, error)
        return rollout
    with transaction.atomic():
        rollout = _locked(rollout.pk)
        if rollout.revision != seen or rollout.synced:
            return rollout
        rollout.synced = True
        rollout.external_ref = reference
        if rollout.state == RolloutState.PENDING:
            rollout.state = RolloutState.PROGRESSING
        if rollout.state == RolloutState.PROGRESSING:
            rollout.step_started_at = now
            RolloutStep.objects.filter(rollout=rollout, index=rollout.step_index).update(
                started_at=now
            )
        rollout.save(update_fields=["synced", "external_ref", "state", "step_started_at"])
        _audit(rollout, "rollout.applied", SYSTEM, None, external_ref=reference)
        if rollout.state == RolloutState.SUCCEEDED:
            target_assign(version=rollout.version, target=rollout.target, actor=SYSTEM)
    return rollout


def _fail(rollout: Rollout, seen: int, reason: str) -> Rollout:
    """Mirror a failure the outside system reports: the rollout fails and its traffic
    goes back to the stable version (the next apply reverts). A rollout already
    reverting or decided meanwhile is left as it is. Side effects: audit
    `rollout.failed`; notified."""
    with transaction.atomic():
        rollout = _locked(rollout.pk)
        if rollout.revision != seen or rollout.state in REVERTED_STATES:
            return rollout
        rollout.revision += 1
        rollout.state, rollout.synced = RolloutState.FAILED, False
        rollout.outcome = f"The backend reports the rollout failed: {reason}"[:2000]
        rollout.finished_at = timezone.now()
        rollout.save(update_fields=["state", "synced", "revision", "outcome", "finished_at"])
        _transition(rollout, "rollout.failed", SYSTEM, None, reason=reason[:500])
    return rollout


def _decide(rollout: Rollout, analysis: Analysis, now: Any) -> Rollout | None:
    """Record the step's analysis and decide; None when another worker got there
    first."""
    seen = rollout.revision
    with transaction.atomic():
        rollout = _locked(rollout.pk)
        if rollout.revision != seen or rollout.state != RolloutState.PROGRESSING:
            return None
        step = RolloutStep.objects.select_for_update().get(
            rollout=rollout, index=rollout.step_index
        )
        step.analysed_at, step.result, step.analysis = now, analysis.result, analysis.to_dict()
        step.save(update_fields=["analysed_at", "result", "analysis"])
        steps = rollout.steps
        fields = ["state", "step_index", "weight", "synced", "revision", "outcome", "finished_at"]
        rollout.revision += 1
        if analysis.result == AnalysisResult.PASS:
            if rollout.step_index + 1 >= len(steps):
                rollout.state, rollout.synced = RolloutState.SUCCEEDED, False
                rollout.outcome = "Every step passed its analysis."
                rollout.finished_at = now
                action = "rollout.succeeded"
            else:
                rollout.step_index += 1
                rollout.weight = steps[rollout.step_index]
                rollout.synced = False
                RolloutStep.objects.create(
                    rollout=rollout, index=rollout.step_index, weight=rollout.weight
                )
                action = "rollout.advanced"
        elif analysis.result == AnalysisResult.FAIL:
            rollout.state, rollout.synced = RolloutState.ROLLED_BACK, False
            rollout.outcome = "Canary analysis failed: " + "; ".join(analysis.reasons)
            rollout.finished_at = now
            action = "rollout.rolled_back"
        else:
            rollout.state = RolloutState.PAUSED
            rollout.outcome = "Analysis inconclusive: " + "; ".join(analysis.reasons)
            action = "rollout.paused"
        rollout.save(update_fields=fields)
        _transition(rollout, action, SYSTEM, None, analysis=analysis.to_dict())
    return rollout


def rollout_tick(
    *, rollout_id: int, backend: RolloutBackend | None = None, now: Any = None
) -> Rollout:
    """One turn of the rollout's machine; safe to repeat at any time.

    Unsynced: apply the desired state. Progressing and baked: analyse the step from
    Prometheus and decide (advance, succeed, roll back on failure, pause when
    inconclusive), then apply that. Returns the rollout as it is now.
    Side effects: backend calls, RolloutStep results, audit events (see `_apply`,
    `_decide`).
    """
    backend = backend or rollout_backend()
    now = now or timezone.now()
    rollout = Rollout.objects.select_related("model", "version", "stable_version").get(
        pk=rollout_id
    )
    if not rollout.synced:
        rollout = _apply(rollout, backend, now)
        if not rollout.synced:
            return rollout
    if rollout.state != RolloutState.PROGRESSING:
        return rollout
    try:
        backend.check(_plan(rollout))
    except RolloutOutsideFailed as error:
        failed = _fail(rollout, rollout.revision, str(error))
        return _apply(failed, backend, timezone.now()) if not failed.synced else failed
    except RolloutBackendError as error:
        logger.warning("rollout %s: could not read the backend's state: %s", rollout.pk, error)
    bake = timedelta(seconds=rollout.strategy.get("bake_seconds", 0))
    if rollout.step_started_at is None or now < rollout.step_started_at + bake:
        return rollout
    analysis = canary_analyse(
        reader=PrometheusReader(url=settings.PROMETHEUS_URL),
        model=rollout.model.slug,
        stable_version=rollout.stable_version.version,
        canary_version=rollout.version.version,
        window_seconds=max(int(bake.total_seconds()), 2),
        # At 100% the stable version serves nothing: compare with its last bake window.
        stable_offset_seconds=int(bake.total_seconds()) if rollout.weight >= 100 else 0,
        thresholds=rollout.strategy.get("thresholds"),
    )
    decided = _decide(rollout, analysis, timezone.now())
    if decided is None:
        return Rollout.objects.get(pk=rollout_id)
    return _apply(decided, backend, timezone.now())


def rollout_seconds_to_next_tick(*, rollout: Rollout) -> float | None:
    """When the tick task should look again: None once there is nothing to do."""
    if not rollout.synced:
        return 1.0
    if rollout.state != RolloutState.PROGRESSING or rollout.step_started_at is None:
        return None
    due = rollout.step_started_at + timedelta(seconds=rollout.strategy.get("bake_seconds", 0))
    return max((due - timezone.now()).total_seconds(), 0.0) + 0.1


def _refuse_unless_allowed(
    *, rollout: Rollout, actor: Actor, allowed: bool, client_ip: str | None, verb: str
) -> None:
    """Refuse (recorded through portal.security) a person the caller's permission check
    said no to. Called before the decision's transaction, so the record stays."""
    if allowed:
        return
    message = f"Only DevOps and portal admins may {verb} rollouts."
    domain_refusal_record(
        code="rollout_forbidden",
        reason=message,
        actor=actor,
        object_type="rollout",
        object_id=rollout.pk,
        client_ip=client_ip,
        action="rollout.refused",
        details={"model": rollout.model.slug, "target": rollout.target, "verb": verb},
    )
    raise RolloutRefused(message, code="forbidden", field="rollout")


def _person_decides(
    *,
    rollout: Rollout,
    states: tuple[str, ...],
    verb: str,
) -> Rollout:
    locked = _locked(rollout.pk)
    if locked.state not in states:
        raise RolloutRefused(
            f"This rollout is {locked.get_state_display().lower()}: it cannot {verb} now.",
            code="state",
            field="rollout",
            state=locked.state,
        )
    return locked


def rollout_promote(
    *, rollout: Rollout, actor: Actor, allowed: bool = True, client_ip: str | None = None
) -> Rollout:
    """A person lets a paused rollout go on to its next step (or finish).
    Side effects: audit `rollout.promoted`; the tick queued on commit."""
    _refuse_unless_allowed(
        rollout=rollout, actor=actor, allowed=allowed, client_ip=client_ip, verb="promote"
    )
    with transaction.atomic():
        rollout = _person_decides(
            rollout=rollout,
            states=(RolloutState.PAUSED,),
            verb="promote",
        )
        rollout.revision += 1
        rollout.synced = False
        if rollout.step_index + 1 >= len(rollout.steps):
            rollout.state, rollout.finished_at = RolloutState.SUCCEEDED, timezone.now()
            rollout.outcome = "Promoted by a person after the last step."
        else:
            rollout.state = RolloutState.PROGRESSING
            rollout.step_index += 1
            rollout.weight = rollout.steps[rollout.step_index]
            RolloutStep.objects.create(
                rollout=rollout, index=rollout.step_index, weight=rollout.weight
            )
        rollout.save()
        _transition(rollout, "rollout.promoted", actor, client_ip)
        rollout_id = rollout.pk
        transaction.on_commit(lambda: rollout_queue_tick(rollout_id=rollout_id))
    return rollout


def rollout_pause(
    *, rollout: Rollout, actor: Actor, allowed: bool = True, client_ip: str | None = None
) -> Rollout:
    """A person holds a progressing rollout at its current weight.
    Side effects: audit `rollout.paused`."""
    _refuse_unless_allowed(
        rollout=rollout, actor=actor, allowed=allowed, client_ip=client_ip, verb="pause"
    )
    with transaction.atomic():
        rollout = _person_decides(
            rollout=rollout,
            states=(RolloutState.PENDING, RolloutState.PROGRESSING),
            verb="pause",
        )
        rollout.revision += 1
        rollout.state = RolloutState.PAUSED
        rollout.outcome = "Paused by a person."
        rollout.save()
        _transition(rollout, "rollout.paused", actor, client_ip)
    return rollout


def _revert(
    *,
    rollout: Rollout,
    actor: Actor,
    allowed: bool,
    client_ip: str | None,
    state: str,
    verb: str,
    reason: str,
) -> Rollout:
    _refuse_unless_allowed(
        rollout=rollout, actor=actor, allowed=allowed, client_ip=client_ip, verb=verb
    )
    with transaction.atomic():
        rollout = _person_decides(
            rollout=rollout,
            states=ACTIVE_ROLLOUT_STATES,
            verb=verb,
        )
        rollout.revision += 1
        rollout.state, rollout.synced = state, False
        rollout.finished_at = timezone.now()
        rollout.outcome = reason
        rollout.save()
        _transition(rollout, f"rollout.{state}", actor, client_ip, reason=reason)
        rollout_id = rollout.pk
        transaction.on_commit(lambda: rollout_queue_tick(rollout_id=rollout_id))
    return rollout


def rollout_abort(
    *,
    rollout: Rollout,
    actor: Actor,
    allowed: bool = True,
    client_ip: str | None = None,
    reason: str = "Aborted by a person.",
) -> Rollout:
    """A person stops the rollout; traffic goes back to the stable version.
    Side effects: audit `rollout.aborted`; the tick (which reverts) queued on commit."""
    return _revert(
        rollout=rollout,
        actor=actor,
        allowed=allowed,
        client_ip=client_ip,
        state=RolloutState.ABORTED,
        verb="abort",
        reason=reason,
    )


def rollout_rollback(
    *,
    rollout: Rollout,
    actor: Actor,
    allowed: bool = True,
    client_ip: str | None = None,
    reason: str = "Rolled back by a person.",
) -> Rollout:
    """A person rolls the canary back. Side effects: audit `rollout.rolled_back`; the
    tick (which reverts) queued on commit."""
    return _revert(
        rollout=rollout,
        actor=actor,
        allowed=allowed,
        client_ip=client_ip,
        state=RolloutState.ROLLED_BACK,
        verb="roll back",
        reason=reason,
    )


def rollouts_sweep() -> list[int]:
    """Rollouts a lost task left behind: unsynced ones (any state) and progressing ones
    past their bake time. Returns their ids; the caller ticks them."""
    stuck = []
    now = timezone.now()
    candidates = Rollout.objects.filter(synced=False) | Rollout.objects.filter(
        state=RolloutState.PROGRESSING
    )
    for rollout in candidates.distinct():
        due = rollout.step_started_at and rollout.step_started_at + timedelta(
            seconds=rollout.strategy.get("bake_seconds", 0)
        )
        if not rollout.synced or (due and now >= due):
            stuck.append(rollout.pk)
    return stuck


__all__ = [
    "REVERTED_STATES",
    "RolloutRefused",
    "rollout_abort",
    "rollout_pause",
    "rollout_promote",
    "rollout_rollback",
    "rollout_start",
    "rollout_tick",
    "rollouts_sweep",
]

"""The run lifecycle: start a run, execute it (on the local runner or Vertex AI),
cancel it, and fail runs whose worker was lost."""

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.models import RegisteredModel
from governance.training.choices import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    STEP_TITLES,
    RunBackend,
    RunState,
    RunTrigger,
    StepState,
)
from governance.training.models import PipelineRun, PipelineStepRun
from governance.training.selectors import next_version_number
from governance.training.services.attempt import RunStopped, clock, run_audit
from governance.training.services.local import LocalRunAttempt
from governance.training.services.vertex import vertex_run_submit
from portal.audit.actors import Actor
from portal.jsonvalues import json_stored_form, json_value_check

logger = logging.getLogger(__name__)

# A run queued this long was never picked up (its message was lost): it is failed so
# that it no longer blocks new runs of its model.
QUEUED_EXPIRY = timedelta(hours=24)


class RunAlreadyActive(ValidationError):
    """A run of this model is already queued or running."""

    def __init__(self, *, active: PipelineRun | None, model: RegisteredModel) -> None:
        number = f" (run #{active.pk}, {active.get_state_display().lower()})" if active else ""
        super().__init__(
            {
                "model": f"A run of {model.slug} is already queued or running{number}: "
                "wait for it to finish, or cancel it, before starting another."
            }
        )
        self.active = active


def params_clean(*, model: RegisteredModel, params: Any) -> dict[str, Any]:
    """The run parameters (hyperparameters, evaluation settings) checked against the
    model kind's known names; ValidationError names the problem."""
    if params in (None, ""):
        return {}
    if not isinstance(params, dict):
        raise ValidationError({"params": "Must be an object of parameter name to value."})
    json_value_check(params, path="params")
    from pipelines import kind_for  # -- slow

    try:
        kind_for(model.kind).settings(params)
    except ValueError as error:
        raise ValidationError({"params": str(error)}) from None
    return json_stored_form(params)


def run_start(
    *,
    model: RegisteredModel,
    trigger: str,
    reason: str,
    actor: Actor,
    params: dict[str, Any] | None = None,
    snapshot_id: str = "",
    compare_with_production: bool = True,
    queue: bool = True,
    client_ip: str | None = None,
) -> PipelineRun:
    """Create a queued run of `model` and reserve its version number.

    Refuses (RunAlreadyActive, a ValidationError) while a run of the model is queued or
    running; the database constraint `one_active_run_per_model` settles two requests
    racing each other. `snapshot_id` empty trains on the newest snapshot in the lake.
    Side effects: audit `pipeline_run.started`; with `queue`, the task
    `training.execute_run` is sent once the transaction commits.
    """
    if trigger not in RunTrigger.values:
        raise ValidationError({"trigger": f"No trigger {trigger!r}."})
    reason = (reason or "").strip()
    if len(reason) > PipelineRun._meta.get_field("reason").max_length:
        raise ValidationError({"reason": "At most 300 characters."})
    params = params_clean(model=model, params=params)
    try:
        with transaction.atomic():
            active = PipelineRun.objects.filter(model=model, state__in=ACTIVE_RUN_STATES).first()
            if active is not None:
                raise RunAlreadyActive(active=active, model=model)
            run = PipelineRun.objects.create(
                model=model,
                trigger=trigger,
                reason=reason,
                requested_by=actor.ref[:80],
                backend=getattr(settings, "PIPELINES_BACKEND", RunBackend.LOCAL),
                planned_version=next_version_number(model=model),
                snapshot_id=snapshot_id,
                params=params,
                compare_with_production=compare_with_production,
            )
            run_audit(
                run,
                "pipeline_run.started",
                actor,
                {
                    "trigger": trigger,
                    "planned_version": run.planned_version,
                    "backend": run.backend,
                    "params": sorted(params),
                },
                client_ip,
            )
            if queue:
                run_id = run.pk
                transaction.on_commit(lambda: _queue_execute(run_id))
    except IntegrityError:
        # Another request created a run of this model between our check and insert.
        active = PipelineRun.objects.filter(model=model, state__in=ACTIVE_RUN_STATES).first()
        raise RunAlreadyActive(active=active, model=model) from None
    return run


def _queue_execute(run_id: int) -> None:
    from governance.training.tasks import execute_run  # noqa: PLC0415 -- task

    execute_run.delay(run_id)


def run_cancel(*, run: PipelineRun, actor: Actor, client_ip: str | None = None) -> PipelineRun:
    """Cancel a queued or running run. A worker executing it stops at its next step or
    log line. Side effects: audit `pipeline_run.cancelled`."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().select_related("model").get(pk=run.pk)
        if run.state not in ACTIVE_RUN_STATES:
            raise ValidationError({"run": "Only a queued or running run can be cancelled."})
        now = timezone.now()
        previous = run.state
        run.state, run.finished_at = RunState.CANCELLED, now
        run.outcome = "Cancelled before it finished; no decision was made."
        run.save(update_fields=["state", "finished_at", "outcome"])
        run.steps.filter(state__in=[StepState.PENDING, StepState.RUNNING]).update(
            state=StepState.SKIPPED, finished_at=now
        )
        run_audit(run, "pipeline_run.cancelled", actor, {"from": previous}, client_ip)
    return run


def runs_reap_stale(*, now: Any = None) -> list[int]:
    """Fail runs whose worker is gone: running with no heartbeat for
    PIPELINES_STALE_MINUTES, or queued for a day without a worker picking them up.
    Returns their ids. Side effects per run: state failed, audit `pipeline_run.failed`.
    """
    now = now or timezone.now()
    minutes = int(getattr(settings, "PIPELINES_STALE_MINUTES", 30))
    cutoff = now - timedelta(minutes=minutes)
    candidates = list(
        PipelineRun.objects.filter(state=RunState.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    ) + list(
        PipelineRun.objects.filter(
            state=RunState.QUEUED, created_at__lt=now - QUEUED_EXPIRY
        ).values_list("pk", flat=True)
    )
    reaped = []
    for run_id in candidates:
        with transaction.atomic():
            run = PipelineRun.objects.select_for_update().select_related("model").get(pk=run_id)
            if run.state == RunState.RUNNING and run.heartbeat_at and run.heartbeat_at < cutoff:
                last = timezone.localtime(run.heartbeat_at).strftime("%Y-%m-%d %H:%M")
                outcome = (
                    f"Failed: no heartbeat from the worker since {last} (over {minutes} "
                    "minutes). The worker running it was lost and the run was not picked up "
                    "again. Start a new run."
                )
            elif run.state == RunState.QUEUED and run.created_at < now - QUEUED_EXPIRY:
                outcome = (
                    "Failed: queued for over a day without a worker picking it up (the "
                    "queued task was lost). Start a new run."
                )
            else:
                continue
            running = run.steps.filter(state=StepState.RUNNING).first()
            if running is not None:
                running.state, running.finished_at = StepState.FAILED, now
                running.log = (running.log + "\n" if running.log else "") + outcome
                running.save(update_fields=["state", "finished_at", "log"])
            run.steps.filter(state=StepState.PENDING).update(state=StepState.SKIPPED)
            run.state, run.finished_at, run.outcome = RunState.FAILED, now, outcome
            run.save(update_fields=["state", "finished_at", "outcome"])
            run_audit(
                run,
                "pipeline_run.failed",
                Actor.system("worker"),
                {"reason": "stale", "step": running.name if running else None},
            )
            reaped.append(run.pk)
    return reaped


def run_execute(*, run_id: int, echo: Callable[[str], None] | None = None) -> PipelineRun:
    """Execute a run (the Celery task's body; `pipeline_run --wait` calls it in-process).

    Does nothing to a finished run. Otherwise claims it as a new attempt and runs the
    steps from the first (or, when an earlier attempt already registered the version,
    only the decision). `echo` receives each log line as it is written.
    Side effects: step records and logs, the run's heartbeat; the version registered
    (`version.registered`) with its card sections; then either a canary review opened
    (`pipeline_run.succeeded`) or the version discarded (`pipeline_run.discarded`); a
    failure records `pipeline_run.failed` with the reason.
    """
    claimed = _claim(run_id)
    if claimed is None:
        return PipelineRun.objects.select_related("model", "version").get(pk=run_id)
    run, attempt = claimed
    try:
        if run.backend == RunBackend.VERTEX:
            vertex_run_submit(run=run)
        else:
            LocalRunAttempt(run=run, attempt=attempt, echo=echo).execute()
    except RunStopped:
        logger.info("run %s attempt %s stopped: the run moved on without it", run_id, attempt)
    return PipelineRun.objects.select_related("model", "version").get(pk=run_id)


def _claim(run_id: int) -> tuple[PipelineRun, int] | None:
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().select_related("model").get(pk=run_id)
        if run.state in FINISHED_RUN_STATES:
            return None
        now = timezone.now()
        resumed = run.state == RunState.RUNNING
        run.attempts += 1
        run.state = RunState.RUNNING
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.save(update_fields=["attempts", "state", "started_at", "heartbeat_at"])
        interrupted = run.steps.filter(state=StepState.RUNNING).values_list("name", flat=True)
        note = ""
        if resumed:
            where = f" during step {interrupted[0]}" if interrupted else ""
            note = (
                f"attempt {run.attempts}: the previous attempt stopped{where} (its worker was lost)"
            )
        if run.version_id is None:
            # Steps keep nothing between attempts: start again from the first.
            run.steps.all().delete()
            PipelineStepRun.objects.bulk_create(
                PipelineStepRun(run=run, position=n, name=name)
                for n, name in enumerate(STEP_TITLES)
            )
            if note:
                note += "; starting again from the first step"
        else:
            run.steps.filter(name="compare").update(
                state=StepState.PENDING, started_at=None, finished_at=None, log=""
            )
            if note:
                note += f"; version {run.version.version} was registered, deciding again"
        if note:
            first = "snapshot" if run.version_id is None else "compare"
            run.steps.filter(name=first).update(log=f"{clock()} {note}")
        run_audit(
            run,
            "pipeline_run.attempt_started",
            Actor.system("worker"),
            {"attempt": run.attempts, "resumed": resumed},
        )
    return run, run.attempts

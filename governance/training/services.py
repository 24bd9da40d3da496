"""Writes for training runs: start one, execute it on the local runner (step by step,
with logs and heartbeats), make the retraining decision, cancel, and fail runs whose
worker was lost.

Execution is safe to repeat. Each delivery of the task is an *attempt*: it claims the
run by incrementing `attempts`, and every write it makes afterwards checks that the
run is still running under that attempt number, so an older attempt that is still
alive somewhere stops at its next step or log line instead of racing the new one.
The steps keep nothing on disk between them (the artifact folder is keyed by the run,
so a new attempt overwrites it), and registration, the card sections and the run's
link to its version commit together: an attempt either registered the version or left
no trace of it, and a later attempt that finds the version goes straight to the
decision. The same run never registers two versions.
"""

import json
import logging
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.choices import CardSectionKey, LifecycleState, Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.choices import ReviewSource
from governance.reviews.selectors import policy_for
from governance.reviews.services import review_open
from governance.selectors.registry import SEMVER_DESC, production_version
from governance.services.cards import card_section_write
from governance.services.registry import GIT_SHA_RE, version_register, version_set_state
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
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.jsonvalues import json_stored_form, json_value_check

logger = logging.getLogger(__name__)

AUDIT_OBJECT_TYPE = "pipeline_run"
PIPELINE_ACTOR = Actor.system("pipelines")
SEED = 0
# A run queued this long was never picked up (its message was lost): it is failed so
# that it no longer blocks new runs of its model.
QUEUED_EXPIRY = timedelta(hours=24)
PIPELINE_STEPS = ("snapshot", "validate", "features", "train", "evaluate", "package")


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


class RunStopped(Exception):
    """This attempt no longer owns the run: it was cancelled, reaped, or another
    attempt took it over. The attempt stops without writing anything more."""


class RegistrationRefused(Exception):
    """The trained version cannot be registered (e.g. no code version for lineage)."""


def _audit(run: PipelineRun, action: str, actor: Actor, payload: dict, client_ip=None) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=run.pk,
        payload={"model": run.model.slug, **payload},
        client_ip=client_ip,
    )


def _actor_ref(actor: Actor) -> str:
    return f"{actor.type}:{actor.id}"[:80] if actor.id else str(actor.type)


def _actor_from_ref(ref: str) -> Actor:
    kind, _, ident = ref.partition(":")
    return Actor(kind, ident) if kind else PIPELINE_ACTOR


def next_version_number(*, model: RegisteredModel) -> str:
    """A minor bump of the model's highest version (1.0.0 for a model without any)."""
    latest = ModelVersion.objects.filter(model=model).order_by(*SEMVER_DESC).first()
    if latest is None:
        return "1.0.0"
    return f"{latest.version_major}.{latest.version_minor + 1}.0"


def params_clean(*, model: RegisteredModel, params: Any) -> dict[str, Any]:
    """The run parameters (hyperparameters, evaluation settings) checked against the
    model kind's known names; ValidationError names the problem."""
    if params in (None, ""):
        return {}
    if not isinstance(params, dict):
        raise ValidationError({"params": "Must be an object of parameter name to value."})
    json_value_check(params, path="params")
    from pipelines import kind_for

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
                requested_by=_actor_ref(actor),
                backend=getattr(settings, "PIPELINES_BACKEND", RunBackend.LOCAL),
                planned_version=next_version_number(model=model),
                snapshot_id=snapshot_id,
                params=params,
                compare_with_production=compare_with_production,
            )
            _audit(
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
    from governance.training.tasks import execute_run

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
        _audit(run, "pipeline_run.cancelled", actor, {"from": previous}, client_ip)
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
            _audit(
                run,
                "pipeline_run.failed",
                Actor.system("worker"),
                {"reason": "stale", "step": running.name if running else None},
            )
            reaped.append(run.pk)
    return reaped


# --- execution ---------------------------------------------------------------------------


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
            _execute_on_vertex(run)
        else:
            _LocalRunner(run=run, attempt=attempt, echo=echo).execute()
    except RunStopped:
        logger.info("run %s attempt %s stopped: the run moved on without it", run_id, attempt)
    return PipelineRun.objects.select_related("model", "version").get(pk=run_id)


def _execute_on_vertex(run: PipelineRun) -> None:
    """Submit the run as a Vertex AI PipelineJob; `training.vertex_poll` follows it."""
    from governance.training.vertex import vertex_run_submit

    vertex_run_submit(run=run)


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
            run.steps.filter(name=first).update(log=f"{_clock()} {note}")
        _audit(
            run,
            "pipeline_run.attempt_started",
            Actor.system("worker"),
            {"attempt": run.attempts, "resumed": resumed},
        )
    return run, run.attempts


def _clock() -> str:
    return timezone.now().strftime("%H:%M:%S")


def _plain(value: Any) -> Any:
    """JSON-safe copy (numpy scalars become Python numbers)."""

    def default(obj: Any) -> Any:
        return obj.item() if hasattr(obj, "item") else str(obj)

    return json.loads(json.dumps(value, default=default))


def code_version_for(reported: str) -> str:
    """The git SHA for lineage: what the pipeline found, else the CODE_VERSION setting.
    RegistrationRefused when neither is a SHA: lineage must say which code trained it."""
    for candidate in (reported, getattr(settings, "CODE_VERSION", "")):
        value = (candidate or "").strip().lower()
        if GIT_SHA_RE.match(value):
            return value
    raise RegistrationRefused(
        "no code version: this checkout has no git history and CODE_VERSION is not set "
        "(set it to the commit SHA of the code that runs here)"
    )


def retrain_tolerance(*, model: RegisteredModel, metric: str) -> tuple[float, str]:
    """The relative slack on the primary metric, and where it came from."""
    raw = str(getattr(settings, "PIPELINES_RETRAIN_TOLERANCE", "0")).strip().lower()
    if raw == "policy":
        policy = policy_for(model=model, target=Target.PRODUCTION)
        if policy is None:
            return 0.0, "no production review policy: strictly better"
        own = (policy.metric_tolerances or {}).get(metric)
        if own is not None:
            return float(own), f"production review policy, {metric} tolerance"
        return float(policy.metric_tolerance_default), "production review policy, default tolerance"
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"PIPELINES_RETRAIN_TOLERANCE must be a number or 'policy', not {raw!r}"
        ) from None
    if value < 0:
        raise ImproperlyConfigured("PIPELINES_RETRAIN_TOLERANCE cannot be negative")
    return value, "PIPELINES_RETRAIN_TOLERANCE"


class _LocalRunner:
    """One attempt at a run on this machine."""

    def __init__(
        self, *, run: PipelineRun, attempt: int, echo: Callable[[str], None] | None
    ) -> None:
        self.run = run
        self.attempt = attempt
        self.echo = echo
        self.steps = {s.name: s for s in run.steps.all()}
        self.lines = {
            name: [line for line in s.log.splitlines() if line] for name, s in self.steps.items()
        }
        self.current: str | None = None

    # -- bookkeeping, each write committed at once so the run page shows it live --

    def _owned(self) -> Any:
        return PipelineRun.objects.filter(
            pk=self.run.pk, attempts=self.attempt, state=RunState.RUNNING
        )

    def heartbeat(self) -> None:
        if not self._owned().update(heartbeat_at=timezone.now()):
            raise RunStopped

    def log(self, line: str) -> None:
        name = self.current or "snapshot"
        for part in str(line).splitlines() or [""]:
            self.lines[name].append(f"{_clock()} {part}")
        self.heartbeat()
        PipelineStepRun.objects.filter(pk=self.steps[name].pk).update(
            log="\n".join(self.lines[name])
        )
        if self.echo is not None:
            self.echo(f"[{name}] {line}")

    def begin(self, name: str) -> None:
        self.current = name
        self.heartbeat()
        PipelineStepRun.objects.filter(pk=self.steps[name].pk).update(
            state=StepState.RUNNING, started_at=timezone.now(), finished_at=None
        )
        if self.echo is not None:
            self.echo(f"[{name}] {STEP_TITLES[name]}...")

    def end(self, name: str) -> None:
        self.heartbeat()
        step = PipelineStepRun.objects.get(pk=self.steps[name].pk)
        step.state, step.finished_at = StepState.SUCCEEDED, timezone.now()
        step.save(update_fields=["state", "finished_at"])
        if self.echo is not None:
            self.echo(f"[{name}] done in {step.duration_seconds:.1f}s")

    def lock(self) -> PipelineRun:
        """Inside a transaction: the run, locked, if this attempt still owns it."""
        run = PipelineRun.objects.select_for_update().select_related("model").get(pk=self.run.pk)
        if run.attempts != self.attempt or run.state != RunState.RUNNING:
            raise RunStopped
        return run

    def fail(self, name: str, outcome: str, problems: list[str] | None = None) -> None:
        with transaction.atomic():
            run = self.lock()
            now = timezone.now()
            step = PipelineStepRun.objects.get(pk=self.steps[name].pk)
            step.state, step.finished_at = StepState.FAILED, now
            step.save(update_fields=["state", "finished_at"])
            run.steps.filter(state=StepState.PENDING).update(state=StepState.SKIPPED)
            run.state, run.finished_at, run.outcome = RunState.FAILED, now, outcome
            run.save(update_fields=["state", "finished_at", "outcome"])
            payload: dict[str, Any] = {"step": name, "attempt": self.attempt}
            if problems is not None:
                payload["problems"] = problems[:20]
            _audit(run, "pipeline_run.failed", PIPELINE_ACTOR, payload)
        if self.echo is not None:
            self.echo(outcome)

    # -- the run --------------------------------------------------------------------

    def execute(self) -> None:
        from pipelines import STEPS, RunContext, ValidationFailed

        if self.run.version_id is None:
            ctx = RunContext(
                model_kind=self.run.model.kind,
                lake_root=settings.PIPELINES_LAKE_ROOT,
                artifact_root=settings.PIPELINES_ARTIFACT_ROOT,
                snapshot_id=self.run.snapshot_id or None,
                params=dict(self.run.params),
                seed=SEED,
                run_id=self.run.pipeline_run_ref,
                log=self.log,
            )
            for step in STEPS:
                self.begin(step.name)
                try:
                    step.run(ctx)
                except RunStopped:
                    raise
                except ValidationFailed as failure:
                    problems = [str(p) for p in failure.problems]
                    shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
                    self.fail(
                        step.name,
                        f"Failed: the data did not pass validation ({len(problems)} "
                        f"problem{'s' if len(problems) != 1 else ''}): {shown}",
                        problems,
                    )
                    return
                except Exception as error:
                    self.log(traceback.format_exc(limit=-3).rstrip())
                    self.fail(step.name, f"Failed in step {step.name}: {_describe(error)}")
                    return
                if step.name == "snapshot" and not self.run.snapshot_id:
                    self._owned().update(snapshot_id=ctx.snapshot.id)
                    self.run.snapshot_id = ctx.snapshot.id
                self.end(step.name)
            self.begin("register")
            try:
                self.register(ctx.result)
            except RunStopped:
                raise
            except Exception as error:
                self.log(traceback.format_exc(limit=-3).rstrip())
                self.fail("register", f"Failed to register the version: {_describe(error)}")
                return
            self.end("register")
        self.begin("compare")
        try:
            self.decide()
        except RunStopped:
            raise
        except Exception as error:
            self.log(traceback.format_exc(limit=-3).rstrip())
            self.fail("compare", f"Failed to compare with production: {_describe(error)}")

    def registration_body(self, result: Any, version: str) -> dict[str, Any]:
        return _plain(
            {
                "version": version,
                "artifact_uri": result.artifact_uri,
                # No container image on the local runner: the model file's digest
                # stands in for it (the card's training data section says so).
                "image_digest": result.artifact_digest,
                "data_version": result.data_version,
                "code_version": code_version_for(result.code_version),
                "pipeline_run_id": self.run.pipeline_run_ref,
                "hyperparameters": result.hyperparameters,
                "metrics": result.metrics,
                "metric_slices": result.metric_slices,
            }
        )

    def register(self, result: Any) -> None:
        with transaction.atomic():
            run = self.lock()
            model = run.model
            version = ModelVersion.objects.filter(
                model=model, pipeline_run_id=run.pipeline_run_ref
            ).first()
            if version is None:
                number = run.planned_version
                if ModelVersion.objects.filter(model=model, version=number).exists():
                    number = next_version_number(model=model)
                    self.log(
                        f"version {run.planned_version} was registered by someone else "
                        f"meanwhile; this run registers {number}"
                    )
                    run.planned_version = number
                body = self.registration_body(result, number)
                version, created = version_register(
                    model_slug=model.slug, data=body, actor=PIPELINE_ACTOR
                )
                if created:
                    self.write_card(version, result)
            run.version = version
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["version", "planned_version", "heartbeat_at"])
            self.run = run
        self.log(f"registered {model.slug} {version.version} ({version.image_digest[:19]}...)")

    def write_card(self, version: ModelVersion, result: Any) -> None:
        facts = result.card_facts
        text = facts.text
        lineage = self.lineage_note(version, result)
        writes = {
            CardSectionKey.DATA_SCHEMA: (text.get("data_schema", ""), facts.data_schema),
            CardSectionKey.TRAINING_DATA: (
                f"{text.get('training_data', '')}\n\n{lineage}".strip(),
                facts.training_data,
            ),
            CardSectionKey.EVALUATION_DATA: (
                text.get("evaluation_data", ""),
                facts.evaluation_data,
            ),
            CardSectionKey.PERFORMANCE: (self.performance_text(version, text), None),
        }
        for key, (content, data) in writes.items():
            card_section_write(
                card=version.card,
                key=key,
                content=content,
                data=_plain(data) if data is not None else None,
                actor=PIPELINE_ACTOR,
                comment=f"Written by pipeline run #{self.run.pk}.",
            )

    def lineage_note(self, version: ModelVersion, result: Any) -> str:
        return (
            f"Lineage: trained by the portal's local runner, pipeline run "
            f"#{self.run.pk} (`{self.run.pipeline_run_ref}`), seed {result.seed}, code "
            f"`{version.code_version[:12]}`. There is no container image on the local "
            f"runner: the image digest recorded is the SHA-256 of the model file "
            f"(`{result.artifact_digest[:19]}...`)."
        )

    def performance_text(self, version: ModelVersion, text: dict[str, str]) -> str:
        from pipelines import RULES

        rule = RULES[version.model.kind]
        value = version.metrics.get(rule.metric)
        shown = f"{value:.4g}" if isinstance(value, int | float) else "not measured"
        direction = "higher" if rule.higher_is_better else "lower"
        decides = (
            f"Measured on the hold-out data described under evaluation data. The primary "
            f"metric, {rule.metric} ({direction} is better), is {shown}: retraining "
            f"compares it with production on the same hold-out data."
        )
        return "\n\n".join(part for part in (text.get("performance", ""), decides) if part)

    def production_metrics(
        self, production: ModelVersion | None
    ) -> tuple[dict[str, float] | None, str, str]:
        """(metrics, basis, note) of the production version to compare with."""
        from pipelines import (
            ArtifactError,
            SnapshotCorrupt,
            SnapshotNotFound,
            ValidationFailed,
            evaluate_artifact,
        )

        if production is None:
            return None, "none", "No version is in production: nothing to compare with."
        reason = "it has no artifact URI"
        if production.artifact_uri:
            try:
                metrics = evaluate_artifact(
                    self.run.model.kind,
                    production.artifact_uri,
                    settings.PIPELINES_LAKE_ROOT,
                    self.run.snapshot_id or None,
                    params=self.run.params,
                )
            except (
                ArtifactError,
                NotImplementedError,
                ValueError,
                OSError,
                KeyError,
                SnapshotCorrupt,
                SnapshotNotFound,
                ValidationFailed,
            ) as error:
                reason = _describe(error)
            else:
                return (
                    _plain(metrics),
                    "rescored",
                    f"Production {production.version} was scored on this run's held-out "
                    "data (same snapshot, same split and baseline).",
                )
        return (
            dict(production.metrics or {}),
            "recorded",
            f"No comparable production artifact ({reason}): compared with the metrics "
            f"production {production.version} recorded at its registration, on its own "
            "data, so the comparison is only indicative.",
        )

    def decide(self) -> None:
        from pipelines import RULES, is_better

        run = self.run
        version = ModelVersion.objects.select_related("model").get(pk=run.version_id)
        model = run.model
        if not run.compare_with_production:
            outcome = (
                f"Version {version.version} registered without a comparison (the first "
                "training of this model here: nothing of its own to compare with); no "
                "review opened."
            )
            self._finish(RunState.SUCCEEDED, outcome, {}, "pipeline_run.succeeded")
            return
        production = production_version(model=model)
        if production is not None and production.pk == version.pk:
            outcome = f"Version {version.version} already serves production."
            self._finish(RunState.SUCCEEDED, outcome, {}, "pipeline_run.succeeded")
            return
        self.log(
            "comparing with production "
            + (production.version if production else "(none)")
            + " on the same held-out data"
        )
        current, basis, note = self.production_metrics(production)
        metric = RULES[model.kind].metric
        tolerance, tolerance_source = retrain_tolerance(model=model, metric=metric)
        better, why = is_better(model.kind, version.metrics, current, tolerance=tolerance)
        comparison = {
            "metric": metric,
            "higher_is_better": RULES[model.kind].higher_is_better,
            "new_version": version.version,
            "new": version.metrics,
            "production_version": production.version if production else None,
            "production": current,
            "basis": basis,
            "basis_note": note,
            "tolerance": tolerance,
            "tolerance_source": tolerance_source,
            "better": better,
            "explanation": why,
        }
        self.log(f"{note} {why}")
        if better:
            outcome = (
                f"Version {version.version} is better than production: sent to the review "
                f"board for canary. {why} {note}"
            )
            self._finish(RunState.SUCCEEDED, outcome, comparison, "pipeline_run.succeeded")
        else:
            outcome = (
                f"Version {version.version} discarded: not better than production. {why} {note}"
            )
            self._finish(RunState.DISCARDED, outcome, comparison, "pipeline_run.discarded")

    def _finish(self, state: str, outcome: str, comparison: dict, action: str) -> None:
        with transaction.atomic():
            run = self.lock()
            version = ModelVersion.objects.get(pk=run.version_id)
            payload: dict[str, Any] = {"version": version.version, "attempt": self.attempt}
            # Stored before the review opens: its metrics check reads the comparison.
            run.comparison = _plain(comparison)
            run.save(update_fields=["comparison"])
            if state == RunState.DISCARDED:
                version_set_state(
                    version=version, state=LifecycleState.DISCARDED, actor=PIPELINE_ACTOR
                )
            elif comparison:
                review, _ = review_open(
                    version=version,
                    target=Target.CANARY,
                    requested_by_actor=_actor_from_ref(run.requested_by),
                    # No "pipeline" source exists; CI ("CI pipeline") is the closest.
                    source=ReviewSource.CI,
                    external_ref=f"pipeline-run:{run.pk}",
                )
                payload["review"] = review.pk
                outcome = outcome.replace("for canary.", f"for canary (review #{review.pk}).", 1)
            if comparison:
                payload["better"] = comparison["better"]
                payload["basis"] = comparison["basis"]
            now = timezone.now()
            run.state, run.outcome, run.comparison = state, outcome, _plain(comparison)
            run.finished_at = run.heartbeat_at = now
            run.save(
                update_fields=["state", "outcome", "comparison", "finished_at", "heartbeat_at"]
            )
            PipelineStepRun.objects.filter(pk=self.steps["compare"].pk).update(
                state=StepState.SUCCEEDED, finished_at=now
            )
            _audit(run, action, PIPELINE_ACTOR, payload)
        if self.echo is not None:
            self.echo(outcome)


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, ValidationError) and hasattr(error, "message_dict"):
        text = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
    return text[:600]


# --- schedules ---------------------------------------------------------------------------

CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def schedule_update(
    *,
    task: Any,
    crontab: dict[str, str],
    enabled: bool,
    actor: Actor,
    client_ip: str | None = None,
) -> Any:
    """Change when a retraining schedule fires (crontab fields) and whether it is on.

    Crontab rows are shared between tasks in django-celery-beat, so the task is pointed
    at the row for the new fields (created if needed) rather than the row edited in
    place. Refuses malformed fields (ValidationError naming the field). Saving the task
    tells beat's DatabaseScheduler to reload. Side effects: audit
    `pipeline_schedule.updated` with the before and after.
    """
    from django_celery_beat import validators
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    checks = {
        "minute": validators.minute_validator,
        "hour": validators.hour_validator,
        "day_of_week": validators.day_of_week_validator,
        "day_of_month": validators.day_of_month_validator,
        "month_of_year": validators.month_of_year_validator,
    }
    cleaned, errors = {}, {}
    for field in CRONTAB_FIELDS:
        value = str(crontab.get(field, "")).strip().replace(" ", "")
        if not value:
            errors[field] = "This field is required (* means every)."
            continue
        try:
            checks[field](value)
        except (ValidationError, ValueError) as error:
            errors[field] = " ".join(getattr(error, "messages", [str(error)]))
            continue
        cleaned[field] = value
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        task = (
            PeriodicTask.objects.select_for_update(of=("self",))
            .select_related("crontab")
            .get(pk=task.pk)
        )
        before = _schedule_state(task)
        zone = task.crontab.timezone if task.crontab else "UTC"
        schedule, _ = CrontabSchedule.objects.get_or_create(**cleaned, timezone=zone)
        task.crontab, task.enabled = schedule, bool(enabled)
        task.save()
        after = _schedule_state(task)
        if before != after:
            audit_record(
                action="pipeline_schedule.updated",
                actor=actor,
                object_type="pipeline_schedule",
                object_id=task.pk,
                payload={"name": task.name, "before": before, "after": after},
                client_ip=client_ip,
            )
    return task


def _schedule_state(task: Any) -> dict[str, Any]:
    crontab = task.crontab
    fields = {f: getattr(crontab, f) for f in CRONTAB_FIELDS} if crontab else {}
    return {"enabled": task.enabled, "crontab": fields}

"""One attempt at a training run, and the steps both runners share.

Execution is safe to repeat. Each delivery of the task is an *attempt*: it claims the
run by incrementing `attempts`, and every write it makes afterwards checks that the
run is still running under that attempt number, so an older attempt that is still
alive somewhere stops at its next step or log line instead of racing the new one.
Registration, the card sections and the run's link to its version commit together: an
attempt either registered the version or left no trace of it, and a later attempt that
finds the version goes straight to the decision. The same run never registers two
versions.

Lock order: the run row first (`lock`), then what the registry and the review board lock
(the version, the review), the audit chain head last; no lock is held while a step runs.
"""

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.choices import CardSectionKey, LifecycleState, Target
from governance.models import ModelVersion
from governance.reviews.choices import ReviewSource
from governance.reviews.services import review_open
from governance.services.cards import card_section_write
from governance.services.registry import GIT_SHA_RE, version_register, version_set_state
from governance.training.choices import STEP_TITLES, RunState, StepState
from governance.training.models import PipelineRun, PipelineStepRun
from governance.training.selectors import next_version_number
from governance.training.signals import version_trained
from portal.audit.actors import Actor
from portal.audit.services import audit_record

AUDIT_OBJECT_TYPE = "pipeline_run"
PIPELINE_ACTOR = Actor.system("pipelines")


class RunStopped(Exception):
    """This attempt no longer owns the run: it was cancelled, reaped, or another
    attempt took it over. The attempt stops without writing anything more."""


class RegistrationRefused(Exception):
    """The trained version cannot be registered (e.g. no code version for lineage)."""


def run_audit(run: PipelineRun, action: str, actor: Actor, payload: dict, client_ip=None) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=run.pk,
        payload={"model": run.model.slug, **payload},
        client_ip=client_ip,
    )


def clock() -> str:
    return timezone.now().strftime("%H:%M:%S")


def plain_json(value: Any) -> Any:
    """JSON-safe copy (numpy scalars become Python numbers)."""

    def default(obj: Any) -> Any:
        return obj.item() if hasattr(obj, "item") else str(obj)

    return json.loads(json.dumps(value, default=default))


def error_describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, ValidationError) and hasattr(error, "message_dict"):
        text = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
    return text[:600]


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


class RunAttempt:
    """One attempt at a run: the steps both runners share.

    Bookkeeping (heartbeat, step states and logs, each write committed at once so the
    run page shows it live; `lock` and `fail` under this attempt's ownership), the
    registration of the trained version with its card sections, and `finish`, which
    records the retraining decision and opens the canary review. A runner subclasses
    it with its own `execute` flow and `lineage_note` (LocalRunAttempt, VertexRunAttempt).
    """

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
            self.lines[name].append(f"{clock()} {part}")
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
            run_audit(run, "pipeline_run.failed", PIPELINE_ACTOR, payload)
        if self.echo is not None:
            self.echo(outcome)

    def registration_body(self, result: Any, version: str) -> dict[str, Any]:
        return plain_json(
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
                    version_trained.send(
                        sender=ModelVersion,
                        version=version,
                        serving_reference=getattr(result, "serving_reference", {}) or {},
                    )
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
                data=plain_json(data) if data is not None else None,
                actor=PIPELINE_ACTOR,
                comment=f"Written by pipeline run #{self.run.pk}.",
            )

    def lineage_note(self, version: ModelVersion, result: Any) -> str:
        """The card's sentence on where and how the version was trained."""
        raise NotImplementedError

    def performance_text(self, version: ModelVersion, text: dict[str, str]) -> str:
        from pipelines import RULES  # -- slow

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

    def finish(self, state: str, outcome: str, comparison: dict, action: str) -> None:
        """Record the decision: the run succeeded (a canary review opened when there was
        a comparison) or discarded its version. Side effects: the run, the version's
        state or a review (`review.opened`), audit `action`."""
        with transaction.atomic():
            run = self.lock()
            version = ModelVersion.objects.get(pk=run.version_id)
            payload: dict[str, Any] = {"version": version.version, "attempt": self.attempt}
            # Stored before the review opens: its metrics check reads the comparison.
            run.comparison = plain_json(comparison)
            run.save(update_fields=["comparison"])
            if state == RunState.DISCARDED:
                version_set_state(
                    version=version, state=LifecycleState.DISCARDED, actor=PIPELINE_ACTOR
                )
            elif comparison:
                review, _ = review_open(
                    version=version,
                    target=Target.CANARY,
                    requested_by_actor=Actor.from_ref(run.requested_by, default=PIPELINE_ACTOR),
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
            run.state, run.outcome, run.comparison = state, outcome, plain_json(comparison)
            run.finished_at = run.heartbeat_at = now
            run.save(
                update_fields=["state", "outcome", "comparison", "finished_at", "heartbeat_at"]
            )
            PipelineStepRun.objects.filter(pk=self.steps["compare"].pk).update(
                state=StepState.SUCCEEDED, finished_at=now
            )
            run_audit(run, action, PIPELINE_ACTOR, payload)
        if self.echo is not None:
            self.echo(outcome)

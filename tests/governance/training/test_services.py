"""Training runs through the services: each model trained end to end, the retraining
decision (review for canary or discard), validation failures, refusals, retries after
a lost attempt, stale runs, cancelling, schedules."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from governance.choices import CardSectionKey, LifecycleState, Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.choices import ReviewSource
from governance.reviews.models import Review
from governance.services.registry import target_assign, version_register
from governance.training.choices import STEP_TITLES, RunState, RunTrigger, StepState
from governance.training.models import PipelineRun
from governance.training.services import (
    RegistrationRefused,
    RunAlreadyActive,
    code_version_for,
    retrain_tolerance,
    run_cancel,
    run_execute,
    run_start,
    runs_reap_stale,
)
from governance.training.tasks import scheduled_run
from pipelines import STEPS, write_snapshot
from pipelines.lake import open_snapshot
from portal.audit.models import AuditEvent
from tests.governance.training.conftest import CODE_VERSION, TESTER
from worker.beat import BEAT_SCHEDULE

pytestmark = pytest.mark.django_db

BASELINE = {
    "demand-forecasting": ("mape", "baseline_mape", "lower"),
    "product-recommendation": ("hit_rate_at_k", "baseline_hit_rate_at_k", "higher"),
}


def _actions(run: PipelineRun) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="pipeline_run", object_id=str(run.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def _model(slug: str) -> RegisteredModel:
    return RegisteredModel.objects.get(slug=slug)


def test_step_titles_follow_the_pipeline_steps():
    assert list(STEP_TITLES)[:6] == [step.name for step in STEPS]
    assert list(STEP_TITLES)[6:] == ["register", "compare"]


@pytest.mark.parametrize(
    "slug", ["demand-forecasting", "customer-segmentation", "product-recommendation"]
)
def test_run_trains_registers_and_sends_a_new_model_to_review(train, lake, slug):
    """With nothing in production, a run that beats its baseline registers the version
    with full lineage, fills the card from the pipeline and opens a canary review."""
    run = train(slug)

    assert run.state == RunState.SUCCEEDED, run.outcome
    assert run.attempts == 1 and run.snapshot_id == lake.base.id
    steps = list(run.steps.all())
    assert [s.name for s in steps] == list(STEP_TITLES)
    assert all(s.state == StepState.SUCCEEDED for s in steps)
    assert all(s.started_at and s.finished_at and s.duration_seconds >= 0 for s in steps)
    assert "content hash verified" in steps[0].log
    assert "metrics:" in next(s for s in steps if s.name == "evaluate").log

    version = ModelVersion.objects.select_related("card").get(pk=run.version_id)
    assert version.version == run.planned_version == "1.0.0"
    assert version.data_version == lake.base.id
    assert re.fullmatch(r"[0-9a-f]{7,40}", version.code_version)  # git, else the setting
    assert version.pipeline_run_id == f"portal-run-{run.pk}"
    assert (
        version.artifact_uri.startswith("file://")
        and f"portal-run-{run.pk}" in version.artifact_uri
    )
    assert version.image_digest.startswith("sha256:") and version.lineage_complete
    assert version.metrics and version.metric_slices and version.hyperparameters
    if slug in BASELINE:
        metric, baseline, better = BASELINE[slug]
        if better == "lower":
            assert version.metrics[metric] < version.metrics[baseline]
        else:
            assert version.metrics[metric] > version.metrics[baseline]
    else:
        assert version.metrics["smallest_segment_share"] >= 0.02

    sections = {s.key: s for s in version.card.sections.all()}
    assert sections[CardSectionKey.DATA_SCHEMA].data["fields"]
    assert sections[CardSectionKey.TRAINING_DATA].data["data_version"] == lake.base.id
    assert sections[CardSectionKey.TRAINING_DATA].data["row_count"] > 0
    assert "no container image" in sections[CardSectionKey.TRAINING_DATA].content
    assert sections[CardSectionKey.EVALUATION_DATA].data["period_end"]
    assert sections[CardSectionKey.PERFORMANCE].content
    assert sections[CardSectionKey.PERFORMANCE].data["metrics"] == version.metrics

    review = Review.objects.get(version=version)
    assert review.target == Target.CANARY and review.source == ReviewSource.CI
    assert review.external_ref == f"pipeline-run:{run.pk}"
    assert run.comparison["basis"] == "none" and run.comparison["better"] is True
    assert "sent to the review board for canary" in run.outcome
    assert _actions(run) == [
        "pipeline_run.started",
        "pipeline_run.attempt_started",
        "pipeline_run.succeeded",
    ]


def _to_production(run: PipelineRun) -> ModelVersion:
    version = ModelVersion.objects.get(pk=run.version_id)
    target_assign(version=version, target=Target.PRODUCTION, actor=TESTER)
    return version


def test_run_not_better_than_production_is_discarded_without_review(train, lake):
    """The same training on the same data scores a tie with production: not better, so
    the version is discarded with the comparison and nobody is asked to review it."""
    production = _to_production(train("demand-forecasting", compare=False))
    run = train("demand-forecasting")

    assert run.state == RunState.DISCARDED
    version = ModelVersion.objects.get(pk=run.version_id)
    assert version.state == LifecycleState.DISCARDED and version.version == "1.1.0"
    assert not Review.objects.filter(version=version).exists()
    comparison = run.comparison
    assert comparison["basis"] == "rescored" and comparison["better"] is False
    assert comparison["production_version"] == production.version
    assert comparison["production"]["mape"] == pytest.approx(comparison["new"]["mape"])
    assert "not better" in comparison["explanation"]
    assert run.outcome.startswith("Version 1.1.0 discarded: not better than production.")
    assert "pipeline_run.discarded" in _actions(run)


def test_run_better_than_production_opens_a_canary_review(train, lake):
    """Production trained with far too few boosting rounds, scored on the new run's
    hold-out data, loses to the new version: a canary review is opened."""
    _to_production(train("demand-forecasting", compare=False, params={"max_iter": 3}))
    run = train("demand-forecasting", snapshot=lake.shifted.id)

    assert run.state == RunState.SUCCEEDED, run.outcome
    assert run.comparison["basis"] == "rescored" and run.comparison["better"] is True
    assert run.comparison["new"]["mape"] < run.comparison["production"]["mape"]
    review = Review.objects.get(version_id=run.version_id)
    assert review.target == Target.CANARY
    assert f"review #{review.pk}" in run.outcome
    # The review's metrics check compares like for like too: production as the run
    # rescored it on this version's hold-out data, not production's own old numbers.
    check = next(c for c in review.checks if c["key"] == "metrics_not_worse")
    assert f"rescored on this version's held-out data by training run #{run.pk}" in check["detail"]


def test_run_compares_recorded_metrics_when_production_has_no_local_artifact(train, body_for):
    """A production version held in Cloud Storage (gs://) cannot be rescored here: the
    run compares with its recorded metrics and says so."""
    version, _ = version_register(
        model_slug="demand-forecasting", data=body_for(mape=9.0), actor=TESTER
    )
    target_assign(version=version, target=Target.PRODUCTION, actor=TESTER)

    run = train("demand-forecasting")

    assert run.state == RunState.SUCCEEDED
    assert run.comparison["basis"] == "recorded"
    assert run.comparison["production"]["mape"] == 9.0
    assert "No comparable production artifact" in run.comparison["basis_note"]
    assert "gs://" in run.comparison["basis_note"]
    assert "only indicative" in run.outcome
    assert ModelVersion.objects.get(pk=run.version_id).version == "1.1.0"


@pytest.fixture()
def body_for():
    def make(*, mape: float) -> dict:
        return {
            "version": "1.0.0",
            "artifact_uri": "gs://zm-models/demand-forecasting/1.0.0/model",
            "image_digest": "sha256:" + "a" * 64,
            "data_version": "bq-snapshot-1",
            "code_version": "b" * 40,
            "metrics": {"mape": mape, "baseline_mape": 10.0},
        }

    return make


def test_validation_failure_stops_the_run_with_the_problems(train, lake, tmp_path):
    tables = open_snapshot(root=lake.root, snapshot_id=lake.base.id).load()
    tables["transactions"].loc[:9, "quantity"] = -3
    bad = write_snapshot(root=lake.root, tables=tables, source={"test": "negative quantities"})

    run = train("demand-forecasting", snapshot=bad.id)

    assert run.state == RunState.FAILED and run.version_id is None
    assert "did not pass validation" in run.outcome
    assert "transactions.quantity: 10 values outside [1, 1000]" in run.outcome
    states = {s.name: s.state for s in run.steps.all()}
    assert states["snapshot"] == StepState.SUCCEEDED
    assert states["validate"] == StepState.FAILED
    assert {states[n] for n in list(STEP_TITLES)[2:]} == {StepState.SKIPPED}
    assert "problem: transactions.quantity" in run.steps.get(name="validate").log
    assert not ModelVersion.objects.filter(model__slug="demand-forecasting").exists()
    event = AuditEvent.objects.get(object_type="pipeline_run", action="pipeline_run.failed")
    assert event.payload_record.data["step"] == "validate"


def test_missing_snapshot_fails_the_run_clearly(train):
    run = train("demand-forecasting", snapshot="sha256:" + "0" * 64)
    assert run.state == RunState.FAILED
    assert run.outcome.startswith("Failed in step snapshot: no snapshot sha256:000")


def test_second_run_refused_while_one_is_active(db, pipelines_settings):
    model = _model("customer-segmentation")
    first = run_start(model=model, trigger=RunTrigger.MANUAL, reason="a", actor=TESTER)
    with pytest.raises(RunAlreadyActive, match=f"already queued or running \\(run #{first.pk}"):
        run_start(model=model, trigger=RunTrigger.API, reason="b", actor=TESTER)
    assert PipelineRun.objects.filter(model=model).count() == 1
    # Another model is not blocked.
    run_start(
        model=_model("demand-forecasting"), trigger=RunTrigger.MANUAL, reason="", actor=TESTER
    )


def test_run_start_queues_the_task_after_commit_and_audits(
    db, pipelines_settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = run_start(
            model=_model("demand-forecasting"),
            trigger=RunTrigger.MANUAL,
            reason="weekly check",
            actor=TESTER,
            params={"max_iter": 50},
        )
    assert len(callbacks) == 1
    assert run.state == RunState.QUEUED and run.params == {"max_iter": 50}
    event = AuditEvent.objects.get(action="pipeline_run.started")
    assert event.object_id == str(run.pk)
    assert event.payload_record.data["planned_version"] == "1.0.0"


def test_run_start_refuses_unknown_parameters_and_long_reasons(db, pipelines_settings):
    model = _model("demand-forecasting")
    with pytest.raises(ValidationError, match="unknown parameters for forecasting"):
        run_start(model=model, trigger=RunTrigger.MANUAL, reason="", actor=TESTER, params={"k": 1})
    with pytest.raises(ValidationError, match="At most 300"):
        run_start(model=model, trigger=RunTrigger.MANUAL, reason="x" * 301, actor=TESTER)
    assert not PipelineRun.objects.exists()


class WorkerLost(BaseException):
    """Stands in for the process dying: not an Exception, so nothing catches it."""


def _die_at(marker: str):
    def echo(line: str) -> None:
        if line.startswith(marker):
            raise WorkerLost(line)

    return echo


def test_retry_after_a_lost_attempt_restarts_and_registers_one_version(train, lake):
    """An attempt that dies in the middle of training leaves the run running; the next
    delivery starts again from the first step; a delivery after the end does nothing."""
    run = run_start(
        model=_model("product-recommendation"),
        trigger=RunTrigger.MANUAL,
        reason="",
        actor=TESTER,
        snapshot_id=lake.base.id,
        queue=False,
    )
    with pytest.raises(WorkerLost):
        run_execute(run_id=run.pk, echo=_die_at("[train] trained"))
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and run.attempts == 1
    assert run.steps.get(name="train").state == StepState.RUNNING

    run = run_execute(run_id=run.pk)
    assert run.state == RunState.SUCCEEDED and run.attempts == 2
    assert "previous attempt stopped during step train" in run.steps.get(name="snapshot").log
    assert ModelVersion.objects.filter(pipeline_run_id=run.pipeline_run_ref).count() == 1

    again = run_execute(run_id=run.pk)
    assert again.attempts == 2 and again.state == RunState.SUCCEEDED
    assert ModelVersion.objects.filter(model__slug="product-recommendation").count() == 1


def test_retry_after_registration_decides_again_without_retraining(train, lake):
    run = run_start(
        model=_model("demand-forecasting"),
        trigger=RunTrigger.MANUAL,
        reason="",
        actor=TESTER,
        snapshot_id=lake.base.id,
        queue=False,
    )
    with pytest.raises(WorkerLost):
        run_execute(run_id=run.pk, echo=_die_at("[compare]"))
    run.refresh_from_db()
    version_id = run.version_id
    assert version_id is not None and run.state == RunState.RUNNING

    run = run_execute(run_id=run.pk)
    assert run.state == RunState.SUCCEEDED and run.version_id == version_id
    assert run.steps.get(name="train").state == StepState.SUCCEEDED  # not run again
    assert "was registered, deciding again" in run.steps.get(name="compare").log
    assert ModelVersion.objects.filter(model__slug="demand-forecasting").count() == 1
    assert Review.objects.filter(version_id=version_id).count() == 1


def test_an_older_attempt_stops_once_a_newer_one_took_over(train, lake):
    run = run_start(
        model=_model("demand-forecasting"),
        trigger=RunTrigger.MANUAL,
        reason="",
        actor=TESTER,
        snapshot_id=lake.base.id,
        queue=False,
    )

    def another_worker_claims(line: str) -> None:
        if line.startswith("[train] trained"):
            PipelineRun.objects.filter(pk=run.pk).update(attempts=5)

    stopped = run_execute(run_id=run.pk, echo=another_worker_claims)
    assert stopped.state == RunState.RUNNING and stopped.attempts == 5
    assert stopped.version_id is None  # the old attempt registered nothing


def test_stale_running_run_is_failed_by_the_reaper(train, lake, pipelines_settings):
    assert BEAT_SCHEDULE["training-reap-stale-runs"]["task"] == "training.reap_stale_runs"
    pipelines_settings.PIPELINES_STALE_MINUTES = 30
    run = run_start(
        model=_model("customer-segmentation"),
        trigger=RunTrigger.SCHEDULE,
        reason="",
        actor=TESTER,
        snapshot_id=lake.base.id,
        queue=False,
    )
    with pytest.raises(WorkerLost):
        run_execute(run_id=run.pk, echo=_die_at("[features]"))
    assert runs_reap_stale() == []  # a fresh heartbeat: still alive

    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        assert runs_reap_stale() == [run.pk]
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "no heartbeat from the worker" in run.outcome
    assert run.steps.get(name="features").state == StepState.FAILED
    assert "pipeline_run.failed" in _actions(run)
    # A late redelivery of the task leaves the failed run alone.
    assert run_execute(run_id=run.pk).state == RunState.FAILED


def test_queued_run_never_picked_up_is_failed_after_a_day(db, pipelines_settings):
    run = run_start(
        model=_model("customer-segmentation"), trigger=RunTrigger.MANUAL, reason="", actor=TESTER
    )
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert runs_reap_stale() == [run.pk]
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "without a worker picking it up" in run.outcome


def test_run_cancel_stops_a_queued_run_and_frees_the_model(db, pipelines_settings):
    model = _model("demand-forecasting")
    run = run_start(model=model, trigger=RunTrigger.MANUAL, reason="", actor=TESTER)
    run_cancel(run=run, actor=TESTER)
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and run.finished_at
    assert run_execute(run_id=run.pk).state == RunState.CANCELLED
    with pytest.raises(ValidationError, match="Only a queued or running run"):
        run_cancel(run=run, actor=TESTER)
    run_start(model=model, trigger=RunTrigger.MANUAL, reason="again", actor=TESTER)
    assert "pipeline_run.cancelled" in _actions(run)


def test_code_version_comes_from_git_or_the_setting_or_the_run_is_refused(settings):
    settings.CODE_VERSION = ""
    assert code_version_for("ABCDEF1") == "abcdef1"
    with pytest.raises(RegistrationRefused, match="CODE_VERSION is not set"):
        code_version_for("unknown")
    settings.CODE_VERSION = CODE_VERSION
    assert code_version_for("unknown") == CODE_VERSION


def test_retrain_tolerance_reads_the_setting_or_the_production_policy(db, settings):
    model = _model("product-recommendation")
    settings.PIPELINES_RETRAIN_TOLERANCE = "0.01"
    assert retrain_tolerance(model=model, metric="hit_rate_at_k") == (
        0.01,
        "PIPELINES_RETRAIN_TOLERANCE",
    )
    settings.PIPELINES_RETRAIN_TOLERANCE = "policy"
    value, source = retrain_tolerance(model=model, metric="hit_rate_at_k")
    assert value == 0.05 and source == "production review policy, default tolerance"


def test_scheduled_run_starts_a_run_and_skips_while_one_is_active(db, pipelines_settings):
    assert scheduled_run("demand-forecasting").endswith("queued")
    run = PipelineRun.objects.get()
    assert run.trigger == RunTrigger.SCHEDULE and run.requested_by == "system:beat"
    assert scheduled_run("demand-forecasting") == "demand-forecasting: a run is already active"
    assert PipelineRun.objects.count() == 1

"""A real Celery worker (prefork pool, on Redis, against the test PostgreSQL database)
killed in the middle of training: the run is redelivered, starts again, finishes, and
registers exactly one version."""

import os
import signal

import pytest
from celery import Celery

from governance.models import ModelVersion, RegisteredModel
from governance.training.choices import FINISHED_RUN_STATES, RunState, RunTrigger, StepState
from governance.training.models import PipelineRun, PipelineStepRun
from governance.training.services import run_start
from portal.audit.models import AuditEvent
from tests.governance.training.conftest import CODE_VERSION, TESTER
from tests.support.celery_worker import BROKER, celery_workers, pool_children, wait_for

# Enough boosting rounds that the train step takes a few seconds on 20k transactions.
SLOW = {"max_iter": 800, "max_leaf_nodes": 127, "min_samples_leaf": 5, "learning_rate": 0.01}


@pytest.fixture()
def start_worker(lake, tmp_path):
    env = {
        "PIPELINES_LAKE_ROOT": str(lake.root),
        "PIPELINES_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "CODE_VERSION": CODE_VERSION,
    }
    with celery_workers(env) as start:
        yield start


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_killed_worker_run_is_redelivered_and_registers_one_version(
    registry_defaults, start_worker, lake
):
    first = start_worker("first")
    run = run_start(
        model=RegisteredModel.objects.get(slug="demand-forecasting"),
        trigger=RunTrigger.MANUAL,
        reason="killed worker test",
        actor=TESTER,
        params=SLOW,
        snapshot_id=lake.base.id,
        queue=False,
    )
    Celery(broker=BROKER).send_task("training.execute_run", args=[run.pk])

    wait_for(
        lambda: PipelineStepRun.objects.filter(
            run=run, name="train", state=StepState.RUNNING
        ).exists(),
        90,
        "the train step to start",
    )
    children = pool_children(first.pid)
    assert children, "the prefork worker has no child process"
    for child in children:
        os.kill(child, signal.SIGKILL)  # the pool process training the model dies
    second = start_worker("second")

    finished = wait_for(
        lambda: PipelineRun.objects.filter(pk=run.pk, state__in=FINISHED_RUN_STATES).first(),
        120,
        "the run to finish after the kill",
    )
    assert first.poll() is None or second.poll() is None
    assert finished.state in (RunState.SUCCEEDED, RunState.DISCARDED), finished.outcome
    assert finished.attempts >= 2
    assert ModelVersion.objects.filter(pipeline_run_id=finished.pipeline_run_ref).count() == 1
    assert ModelVersion.objects.filter(model__slug="demand-forecasting").count() == 1
    log = finished.steps.get(name="snapshot").log
    assert "previous attempt stopped during step train" in log
    attempts = AuditEvent.objects.filter(
        action="pipeline_run.attempt_started", object_id=str(run.pk)
    ).count()
    assert attempts == finished.attempts

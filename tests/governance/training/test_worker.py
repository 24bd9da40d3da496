"""A real Celery worker (prefork pool, on Redis, against the test PostgreSQL database)
killed in the middle of training: the run is redelivered, starts again, finishes, and
registers exactly one version."""

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.apps import apps
from django.db import connection

from governance.models import ModelVersion, RegisteredModel
from governance.training.choices import FINISHED_RUN_STATES, RunState, RunTrigger, StepState
from governance.training.models import PipelineRun, PipelineStepRun
from governance.training.services import run_start
from portal.audit.models import AuditEvent
from tests.governance.training.conftest import CODE_VERSION, TESTER

ROOT = Path(__file__).resolve().parents[3]
BROKER = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Enough boosting rounds that the train step takes a few seconds on 20k transactions.
SLOW = {"max_iter": 800, "max_leaf_nodes": 127, "min_samples_leaf": 5, "learning_rate": 0.01}


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture()
def registry_defaults(transactional_db):
    """Transactional tests start with empty tables: the three models and the default
    review policies, as their data migrations create them."""
    importlib.import_module("governance.migrations.0002_the_three_models").create_models(apps, None)
    importlib.import_module("governance.reviews.migrations.0002_default_policies").create_defaults(
        apps, None
    )


@pytest.fixture()
def start_worker(lake, tmp_path):
    Celery(broker=BROKER).connection_for_write().default_channel.client.flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": BROKER,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PIPELINES_LAKE_ROOT": str(lake.root),
        "PIPELINES_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "CODE_VERSION": CODE_VERSION,
    }
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.celery",
                "worker",
                "--concurrency",
                "1",
                "--hostname",
                f"{name}@%h",
                "--loglevel",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


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

    _wait_for(
        lambda: PipelineStepRun.objects.filter(
            run=run, name="train", state=StepState.RUNNING
        ).exists(),
        90,
        "the train step to start",
    )
    children = _children(first.pid)
    assert children, "the prefork worker has no child process"
    for child in children:
        os.kill(child, signal.SIGKILL)  # the pool process training the model dies
    second = start_worker("second")

    finished = _wait_for(
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

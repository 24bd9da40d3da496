"""A real Celery worker (prefork pool, on Redis, against the test PostgreSQL database)
driving a rollout against the real model server and Prometheus, its pool process
SIGKILLed in the middle of a step: the task is given back, the next process resumes
the rollout where it stood, and no step is decided or recorded twice."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from governance.choices import Target
from governance.rollouts.choices import AnalysisResult, RolloutState
from governance.rollouts.models import Rollout
from governance.rollouts.services import rollout_start
from tests.governance.rollouts.conftest import FAST, routing_of
from tests.governance.rollouts.test_rollouts import actions
from tests.governance.training.test_worker import (
    BROKER,
    _children,
    _database_url,
    _wait_for,
    registry_defaults,
)

ROOT = Path(__file__).resolve().parents[3]
registry_defaults = registry_defaults  # a fixture shared with training's worker test

pytestmark = [pytest.mark.prometheus, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture()
def rollout_worker(registry_defaults, stack):
    """Start workers that drive rollouts through the test's model server and Prometheus."""
    Celery(broker=BROKER).connection_for_write().default_channel.client.flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": BROKER,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "ROLLOUTS_BACKEND": "local",
        "SERVING_ROUTING_FILE": str(stack.server.routing_path),
        "SERVING_URL": stack.server.url,
        "SERVING_READY_TIMEOUT": "120",
        "PROMETHEUS_URL": stack.prometheus.url,
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


@pytest.mark.django_db(transaction=True)
def test_rollout_resumes_after_its_worker_is_killed_mid_step(
    rollout_worker, stack, traffic, devops
):
    """The model server is frozen (SIGSTOP) late in step 1's bake; the worker decides
    step 1 passed and tells the server to take 60%, so its task waits for the server's
    readiness, and its pool process is SIGKILLed there. The task comes back to the next
    pool process, which applies the same decision (the routing document is not written
    again) and carries on to 100%. Every step has one record and one analysis; each decision is
    audited once."""
    worker = rollout_worker("rollouts")
    rollout = rollout_start(
        version=stack.canary,
        target=Target.CANARY,
        actor=devops.audit_actor(),
        strategy=FAST,
        queue=False,
    )
    Celery(broker=BROKER).send_task("rollouts.tick", args=[rollout.pk])

    # Late in step 1's bake (30%), freeze the model server (SIGSTOP): the worker's
    # analysis reads Prometheus, which has the step's samples, and decides to advance;
    # telling the frozen server "60%" then waits for its readiness. Frozen before the
    # decision, so the worker cannot apply the step before the kill.
    _wait_for(
        lambda: Rollout.objects.filter(
            pk=rollout.pk,
            step_index=0,
            synced=True,
            step_started_at__lte=timezone.now() - timedelta(seconds=FAST["bake_seconds"] - 1.5),
        ).exists(),
        90,
        "the first step to bake",
    )
    stack.server.process.send_signal(signal.SIGSTOP)
    try:
        decided = _wait_for(
            lambda: (
                Rollout.objects.filter(pk=rollout.pk).exclude(step_index=0).first()
                or Rollout.objects.filter(pk=rollout.pk, state=RolloutState.PAUSED).first()
            ),
            30,
            "the first step's decision",
        )
        assert (decided.step_index, decided.synced) == (1, False), decided.outcome
        _wait_for(
            lambda: routing_of(stack.server.routing_path).get("canary", {}).get("weight") == 60,
            30,
            "the worker to write the 60% routing",
        )
        children = _children(worker.pid)
        assert children, "the prefork worker has no pool process"
        for child in children:
            os.kill(child, signal.SIGKILL)  # the pool process waiting on the server dies
    finally:
        stack.server.process.send_signal(signal.SIGCONT)

    finished = _wait_for(
        lambda: Rollout.objects.filter(
            pk=rollout.pk, state=RolloutState.SUCCEEDED, synced=True
        ).first(),
        120,
        "the rollout to finish after the kill",
    )
    assert worker.poll() is None  # the main process lived on and restarted its pool
    steps = list(finished.step_records.order_by("index"))
    assert [(s.index, s.weight, s.result) for s in steps] == [
        (0, 30, AnalysisResult.PASS),
        (1, 60, AnalysisResult.PASS),
        (2, 100, AnalysisResult.PASS),
    ]
    counted = Counter(actions(finished))
    assert counted["rollout.advanced"] == 2 and counted["rollout.succeeded"] == 1
    # One "applied" per decision: the killed attempt never marked its step applied.
    assert counted["rollout.applied"] == 4
    assert routing_of(stack.server.routing_path)["stable"]["version"] == "1.1.0"
    # The routing document was written once per decision (30%, 60%, 100%, promoted):
    # the resumed task found 60% in place and did not write it again.
    document = json.loads(stack.server.routing_path.read_text())
    assert document["revision"] == stack.revision + 4

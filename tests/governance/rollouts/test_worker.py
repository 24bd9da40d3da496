"""A real Celery worker (prefork pool, on Redis, against the test PostgreSQL database)
driving a rollout against the real model server and Prometheus, its pool process
SIGKILLed in the middle of a step: the task is given back, the next process resumes
the rollout where it stood, and no step is decided or recorded twice."""

import json
import os
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from celery import Celery

from governance.choices import Target
from governance.rollouts.choices import AnalysisResult, RolloutState
from governance.rollouts.models import Rollout
from governance.rollouts.services import rollout_start
from tests.governance.rollouts.conftest import FAST, routing_of
from tests.governance.rollouts.test_rollouts import actions
from tests.support.celery_worker import BROKER, celery_workers, pool_children, wait_for

pytestmark = [pytest.mark.prometheus, pytest.mark.postgres, pytest.mark.redis]


class ReadinessGate:
    """What the worker sees of the model server's readiness: the server's own answer,
    or, while `held`, "not ready" (503). Requests and Prometheus's scrapes go to the
    server directly, so a held gate stops nothing but the worker's wait."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.held = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if gate.held.is_set():
                    status, body = 503, b'{"ready": false, "revision": -1, "error": "held"}'
                else:
                    answer = requests.get(f"{gate.server_url}{self.path}", timeout=5)
                    status, body = answer.status_code, answer.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def readiness(stack):
    gate = ReadinessGate(stack.server.url)
    yield gate
    gate.close()


@pytest.fixture()
def rollout_worker(registry_defaults, stack, readiness):
    """Start workers that drive rollouts through the test's model server and Prometheus."""
    env = {
        "ROLLOUTS_BACKEND": "local",
        "SERVING_ROUTING_FILE": str(stack.server.routing_path),
        "SERVING_URL": readiness.url,
        "SERVING_READY_TIMEOUT": "120",
        "PROMETHEUS_URL": stack.prometheus.url,
    }
    with celery_workers(env) as start:
        yield start


@pytest.mark.django_db(transaction=True)
def test_rollout_resumes_after_its_worker_is_killed_mid_step(
    rollout_worker, readiness, stack, traffic, devops
):
    """The readiness the worker follows is held once step 1 is applied; the worker
    decides step 1 passed and tells the server to take 60%, so its task waits for the
    server's readiness, and its pool process is SIGKILLed there. The task comes back to the next
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

    # Once step 1 (30%) is applied, hold the readiness the worker follows: the worker
    # analyses the step from Prometheus (the server keeps serving and being scraped),
    # decides to advance, writes "60%", and waits for the server to say it serves it.
    wait_for(
        lambda: Rollout.objects.filter(pk=rollout.pk, step_index=0, synced=True).exists(),
        90,
        "the first step to be applied",
    )
    readiness.held.set()
    try:
        decided = wait_for(
            lambda: (
                Rollout.objects.filter(pk=rollout.pk).exclude(step_index=0).first()
                or Rollout.objects.filter(pk=rollout.pk, state=RolloutState.PAUSED).first()
            ),
            60,
            "the first step's decision",
        )
        assert (decided.step_index, decided.synced) == (1, False), decided.outcome
        wait_for(
            lambda: routing_of(stack.server.routing_path).get("canary", {}).get("weight") == 60,
            30,
            "the worker to write the 60% routing",
        )
        time.sleep(1.0)  # the task is in its readiness wait now, whatever the load
        assert not Rollout.objects.get(pk=rollout.pk).synced
        children = pool_children(worker.pid)
        assert children, "the prefork worker has no pool process"
        for child in children:
            os.kill(child, signal.SIGKILL)  # the pool process waiting for readiness dies
    finally:
        readiness.held.clear()

    finished = wait_for(
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

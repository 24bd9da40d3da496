"""A real Celery worker process, on Redis, running a portal task against PostgreSQL."""

import subprocess
import time

import pytest
from celery import Celery

from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from tests.support.celery_worker import BROKER, celery_workers
from worker.celery import app


def test_celery_app_acknowledges_late_and_requeues_on_worker_loss():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert "audit.verify_chain" in {entry["task"] for entry in app.conf.beat_schedule.values()}


@pytest.fixture()
def worker_process():
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with celery_workers(pool=("--pool", "solo"), **output) as start:
        yield start()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_audit_verification_task(worker_process):
    audit_record(action="test.before_worker", actor=Actor.system("test"))
    sender = Celery(broker=BROKER)
    sender.send_task("audit.verify_chain")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        event = AuditEvent.objects.filter(action="audit.chain_verified").first()
        if event is not None:
            break
        assert worker_process.poll() is None, worker_process.stdout.read()
        time.sleep(0.5)
    else:
        worker_process.terminate()
        pytest.fail("the worker did not run the task:\n" + worker_process.communicate()[0])

    assert event.actor_type == "system" and event.actor_id == "worker"
    assert event.payload_record.data["ok"] is True
    assert event.payload_record.data["checked"] == 1

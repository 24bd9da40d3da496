"""A real Celery worker process, on Redis, running a portal task against PostgreSQL."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from tests.conftest import REDIS_URL
from worker.celery import app

ROOT = Path(__file__).resolve().parents[2]


def test_celery_app_acknowledges_late_and_requeues_on_worker_loss():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert "audit.verify_chain" in {entry["task"] for entry in app.conf.beat_schedule.values()}


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture()
def worker_process():
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    Celery(broker=REDIS_URL).connection_for_write().default_channel.client.flushdb()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "info",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_audit_verification_task(worker_process):
    audit_record(action="test.before_worker", actor=Actor.system("test"))
    sender = Celery(broker=REDIS_URL)
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

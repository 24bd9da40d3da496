"""Real Celery workers for the tests that need one: worker processes on the test Redis
broker, against the test database, started by the test and ended when it is done.

The test process's own Celery app talks to an in-memory broker (tests/conftest.py); a
test hands a task to these workers with `Celery(broker=BROKER).send_task(...)`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from celery import Celery
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# One prefork pool process, so a test can find it (`pool_children`) and kill it.
PREFORK_ONE = ("--concurrency", "1")
WORKER_OPTIONS = ("--without-gossip", "--without-mingle", "--without-heartbeat")

T = TypeVar("T")


def database_url() -> str:
    """The test database (the one pytest-django created) as the worker's DATABASE_URL."""
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def celery_workers(
    env: Mapping[str, str] | None = None,
    *,
    pool: Sequence[str] = PREFORK_ONE,
    options: Sequence[str] = WORKER_OPTIONS,
    loglevel: str = "info",
    **popen: Any,
) -> Iterator[Callable[..., subprocess.Popen]]:
    """Empty the test broker, then yield `start(name=None)`, which starts one worker
    process (hostname `name@%h` when named) with the portal's settings, the test
    database, the test broker and `env` on top; every process started is terminated
    on exit (killed after 20 s). `popen` goes to subprocess.Popen (output is dropped
    unless `stdout` says otherwise)."""
    Celery(broker=BROKER).connection_for_write().default_channel.client.flushdb()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": BROKER,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        **(env or {}),
    }
    popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
    started: list[subprocess.Popen] = []

    def start(name: str | None = None) -> subprocess.Popen:
        hostname = ("--hostname", f"{name}@%h") if name else ()
        command = [sys.executable, "-m", "celery", "-A", "worker.celery", "worker"]
        command += [*pool, *hostname, "--loglevel", loglevel, *options]
        process = subprocess.Popen(command, cwd=ROOT, env=environment, **popen)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def pool_children(pid: int) -> list[int]:
    """The process ids of a prefork worker's pool processes (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Poll `condition` every quarter second until it returns something true, and
    return that; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")

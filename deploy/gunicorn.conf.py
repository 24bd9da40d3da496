"""gunicorn settings of the portal's web pods.

With PROMETHEUS_MULTIPROC_DIR set, every worker process writes its metrics there and
/metrics adds them up (django-prometheus reads that directory); a worker that exits
must be marked dead so its gauges stop counting.
"""

import os

from prometheus_client import multiprocess

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
accesslog = "-"
# Kubernetes sends SIGTERM and waits terminationGracePeriodSeconds (30 s by default).
graceful_timeout = 25


def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]

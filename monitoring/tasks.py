"""Celery tasks of monitoring: thin wrappers around its services."""

import logging
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from monitoring.services import window_evaluate, window_latest
from portal.audit.actors import Actor

logger = logging.getLogger(__name__)
WORKER = Actor.system("worker")


@shared_task(name="monitoring.evaluate_windows", acks_late=True)
def evaluate_windows(now: str | None = None) -> str:
    """Quality and drift of every served version over the latest window (beat: every
    five minutes). Idempotent: the same window evaluated again replaces its rows.
    `now` (ISO 8601) picks another window, for a backfill."""
    moment = datetime.fromisoformat(now) if now else timezone.now()
    start, end = window_latest(now=moment)
    report = window_evaluate(start=start, end=end, actor=WORKER)
    logger.info("monitoring: %s", report.summary())
    return report.summary()

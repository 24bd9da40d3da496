"""Celery tasks of monitoring: thin calls onto its services."""

import logging
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from monitoring.reconciler import ClusterUnavailable, ReconcilerDisabled, deployments_reconcile
from monitoring.services import window_evaluate, window_latest
from portal.audit.actors import Actor

logger = logging.getLogger(__name__)
WORKER = Actor.system("worker")


@shared_task(name="monitoring.reconcile_deployments")
def reconcile_deployments() -> str:
    """Hold what the cluster runs against the board's approvals (beat: every 5 minutes).
    Idempotent: the service opens an incident once per unapproved digest. A cluster that
    cannot be read changes nothing and is logged; the next beat tries again."""
    try:
        report = deployments_reconcile()
    except ReconcilerDisabled:
        return "off: RECONCILER_KUBERNETES_API is not set"
    except ClusterUnavailable as exc:
        logger.warning("deployment reconciler: cluster unavailable: %s", exc)
        return f"cluster unavailable: {exc}"
    return (
        f"{report.images} images, {len(report.findings)} unapproved; "
        f"{len(report.opened)} opened, {len(report.refired)} fired again, "
        f"{len(report.resolved)} resolved"
    )


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

"""Celery tasks of monitoring: thin calls onto its services."""

import logging

from celery import shared_task

from monitoring.reconciler import ClusterUnavailable, ReconcilerDisabled, deployments_reconcile

logger = logging.getLogger(__name__)


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

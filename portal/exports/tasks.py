"""Celery tasks of exports: thin calls onto its services."""

from celery import shared_task

from portal.exports.services import export_job_run, export_jobs_expire


@shared_task(name="exports.run", acks_late=True, reject_on_worker_lost=True)
def run_export(job_id: int) -> str:
    """Make one export's file; redelivered if the worker dies, which starts it again."""
    return export_job_run(job_id=job_id).state


@shared_task(name="exports.expire")
def expire_exports() -> int:
    """Beat: delete the files of expired exports."""
    return export_jobs_expire()

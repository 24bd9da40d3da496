"""Celery tasks of the data subjects app: thin wrappers around its services."""

from celery import shared_task

from datasubjects.services import (
    access_package_build,
    access_tasks_finished,
    requests_deadline_sweep,
)
from datasubjects.services import sources as source_services


@shared_task(name="datasubjects.deadlines_sweep")
def deadlines_sweep() -> str:
    """Remind privacy officers of requests due soon, alert overdue ones (beat: hourly)."""
    sweep = requests_deadline_sweep()
    return f"{sweep.reminded} reminded, {sweep.overdue} overdue"


@shared_task(
    name="datasubjects.run_source_task",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=source_services.TASK_MAX_ATTEMPTS,
)
def run_source_task(self, task_id: int) -> str:
    """One request's work in one data source; a failed read is retried with backoff."""
    run = source_services.source_task_run(task_id=task_id)
    if run.retry:
        raise self.retry(countdown=30 * 2 ** (run.task.attempts - 1))
    if run.ran and access_tasks_finished(request=run.task.request):
        # The last source of an access request finished: the package can be built.
        # Two workers finishing at once both build it; the second replaces the first.
        access_package_build(request=run.task.request)
    return f"task {task_id}: {run.task.state if run.task else 'gone'}"

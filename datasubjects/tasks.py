"""Celery tasks of the data subjects app: thin wrappers around its services."""

from celery import shared_task

from datasubjects.choices import PACKAGE_KINDS, TaskState
from datasubjects.connectors import ConnectorError
from datasubjects.selectors import request_by_pk
from datasubjects.services import access_package_ensure, requests_deadline_sweep
from datasubjects.services import sources as source_services
from datasubjects.services.access import PackageUnreadable
from datasubjects.services.suppression import request_suppress


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
    if (
        run.task is not None
        and run.task.state == TaskState.DONE
        and run.task.request.kind in PACKAGE_KINDS
    ):
        # Whether this run did the task or found it done (the same message handed
        # over again after a worker died between the two), the package is built
        # once its last task is done: `access_package_ensure` decides, under a lock.
        build_access_package.delay(run.task.request_id)
    return f"task {task_id}: {run.task.state if run.task else 'gone'}"


@shared_task(
    name="datasubjects.build_access_package",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=source_services.TASK_MAX_ATTEMPTS,
)
def build_access_package(self, request_id: int) -> str:
    """Build an access or portability request's package if its last access task is
    done and it has none yet; a file that cannot be read or written is retried.
    Idempotent: a built package is left alone."""
    request = request_by_pk(request_id)
    if request is None:
        return f"request {request_id}: gone"
    try:
        path = access_package_ensure(request=request)
    except (OSError, PackageUnreadable) as error:
        raise self.retry(countdown=30 * 2**self.request.retries, exc=error) from error
    return f"request {request_id}: {'package ' + path.name if path else 'not yet'}"


@shared_task(
    name="datasubjects.suppress_subject",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=source_services.TASK_MAX_ATTEMPTS,
)
def suppress_subject(self, request_id: int) -> str:
    """Put an objecting, restricting or erased person on the suppression list (or map
    a consent withdrawal to customer keys); a source that cannot be read is retried.
    Idempotent: a person already listed is left alone."""
    request = request_by_pk(request_id)
    if request is None:
        return f"request {request_id}: gone"
    try:
        added = request_suppress(request=request)
    except ConnectorError as error:
        raise self.retry(countdown=60 * 2**self.request.retries, exc=error) from error
    return f"request {request_id}: {len(added)} key(s) listed"

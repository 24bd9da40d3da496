"""Celery tasks of training runs: thin wrappers around governance.training.services."""

import logging

from celery import shared_task

from governance.models import RegisteredModel
from governance.training.choices import RunTrigger
from governance.training.services import (
    POLL_SECONDS,
    RunAlreadyActive,
    lake_import_run,
    run_execute,
    run_start,
    runs_reap_stale,
    vertex_run_poll,
)
from portal.audit.actors import Actor
from worker.backends.vertex_common import VertexError

logger = logging.getLogger(__name__)


# acks_late and reject_on_worker_lost are the app's defaults; spelled out because this
# task depends on them: a worker killed mid-run gives the message back, and the next
# delivery resumes the run (run_execute is idempotent).
@shared_task(name="training.execute_run", acks_late=True, reject_on_worker_lost=True)
def execute_run(run_id: int) -> str:
    run = run_execute(run_id=run_id)
    return f"run {run.pk}: {run.state}"


# A worker killed mid-import gives the message back; the next delivery imports again
# (lake_import_run is idempotent: the lake is content-addressed).
@shared_task(name="training.lake_import", acks_late=True, reject_on_worker_lost=True)
def lake_import_task(import_id: int) -> str:
    job = lake_import_run(import_id=import_id)
    return f"lake import {job.pk}: {job.state}"


@shared_task(name="training.reap_stale_runs")
def reap_stale_runs() -> str:
    """Fail runs whose worker was lost (beat: every five minutes)."""
    reaped = runs_reap_stale()
    if reaped:
        logger.warning("failed stale training runs %s", reaped)
    return f"{len(reaped)} stale run(s) failed"


@shared_task(name="training.start_scheduled_run")
def scheduled_run(model_slug: str) -> str:
    """Start a scheduled retraining run (django-celery-beat rows, editable in the portal);
    skipped while a run of the model is active."""
    model = RegisteredModel.objects.filter(slug=model_slug).first()
    if model is None:
        logger.error("scheduled run of unknown model %r", model_slug)
        return f"no model {model_slug}"
    try:
        run = run_start(
            model=model,
            trigger=RunTrigger.SCHEDULE,
            reason="Scheduled retraining",
            actor=Actor.system("beat"),
        )
    except RunAlreadyActive:
        logger.info("scheduled run of %s skipped: one is already active", model_slug)
        return f"{model_slug}: a run is already active"
    return f"{model_slug}: run {run.pk} queued"


@shared_task(name="training.scheduled_run")
def scheduled_run_under_former_name(model_slug: str) -> str:
    """`training.start_scheduled_run` under the name it had before task names became
    `<app>.<verb>`: a message beat queued under the old name before an upgrade still
    starts its run. Beat's own rows were renamed by migration training 0004."""
    return scheduled_run(model_slug)


@shared_task(name="training.vertex_poll", bind=True, acks_late=True, max_retries=None)
def vertex_poll(self, run_id: int) -> str:
    """Follow a run's Vertex AI PipelineJob, polling again until the run is finished.

    A poll Vertex AI cannot answer (outage) is retried; the stale-run reaper fails a
    run whose polling stopped altogether.
    """
    try:
        finished = vertex_run_poll(run_id=run_id)
    except VertexError as error:
        if not error.retryable:
            raise
        raise self.retry(exc=error, countdown=POLL_SECONDS * 2) from error
    except TimeoutError as error:
        # A client library's wait that ran out (e.g. an operation's result()): the work
        # on Google's side goes on, so poll again rather than let the task die.
        raise self.retry(exc=error, countdown=POLL_SECONDS) from error
    if not finished:
        vertex_poll.apply_async(args=[run_id], countdown=POLL_SECONDS)
    return f"run {run_id}: {'finished' if finished else 'still running'}"

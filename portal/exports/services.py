"""Export jobs: asking for one, running it on a worker, expiring its file.

Lock order (as everywhere in the portal): the job row first, the audit chain head last
(audit_record takes it); the slow part, making the file, holds no lock at all.
"""

import hashlib
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.exports.choices import ExportState
from portal.exports.models import ExportJob
from portal.exports.registry import ExportFile, export_kind_get

logger = logging.getLogger(__name__)
OBJECT_TYPE = "export_job"
# A job whose worker died this many times (killed for memory, say) is not tried again.
MAX_ATTEMPTS = 3


def _storage():
    return storages["exports"]


def _line(message: str) -> str:
    return f"{timezone.now():%H:%M:%S} {message}\n"


def export_job_request(
    *,
    kind: str,
    params: dict[str, Any],
    title: str,
    requested_by: Any,
    client_ip: str | None = None,
) -> ExportJob:
    """Queue an export for a person who may read what it contains.

    Side effects: the job row (queued), audit `export.requested`, and the task that
    makes the file, queued when the transaction commits.
    Raises PermissionDenied if the kind's reader check refuses the person.
    """
    found = export_kind_get(kind)
    if not found.may_read(requested_by, params):
        raise PermissionDenied("You may not read what this export contains.")
    with transaction.atomic():
        job = ExportJob.objects.create(
            kind=kind,
            params=params,
            title=title[:200],
            requested_by=requested_by,
            log=_line("queued"),
        )
        audit_record(
            action="export.requested",
            actor=requested_by.audit_actor(),
            object_type=OBJECT_TYPE,
            object_id=job.pk,
            payload={"kind": kind, "params": params},
            client_ip=client_ip,
        )
        transaction.on_commit(lambda: _queue(job.pk))
    return job


def _queue(job_id: int) -> None:
    from portal.exports.tasks import run_export  # noqa: PLC0415 -- task

    run_export.delay(job_id)


def _progress(job_id: int):
    def report(percent: int, message: str) -> None:
        # One UPDATE, no lock: the page polling the job reads it as it goes.
        ExportJob.objects.filter(pk=job_id, state=ExportState.RUNNING).update(
            progress=max(0, min(int(percent), 99)),
            log=Concat(F("log"), Value(_line(message))),
        )

    return report


def _finish_failed(job_id: int, reason: str) -> ExportJob:
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id)
        job.state = ExportState.FAILED
        job.finished_at = timezone.now()
        job.log += _line(f"failed: {reason}")
        job.save(update_fields=["state", "finished_at", "log"])
        audit_record(
            action="export.failed",
            actor=Actor.system("exports"),
            object_type=OBJECT_TYPE,
            object_id=job.pk,
            payload={"kind": job.kind, "reason": reason[:200], "attempts": job.attempts},
        )
    return job


def export_job_run(*, job_id: int) -> ExportJob:
    """Make the job's file. Idempotent: a finished job is left as it is, and a job
    whose earlier attempt died mid-way starts again and overwrites that attempt's file
    (the storage name depends on the job only), so a retry never leaves two files.

    Side effects: the job's state, progress and log; the file in the "exports"
    storage; audit `export.completed` (or `export.failed`).
    """
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id)
        if not job.is_active:
            return job
        if job.attempts >= MAX_ATTEMPTS:
            stopped = job.attempts
        else:
            stopped = 0
            previous = job.state == ExportState.RUNNING
            job.state = ExportState.RUNNING
            job.attempts += 1
            job.started_at = timezone.now()
            job.progress = 0
            job.log += _line(
                f"attempt {job.attempts} started"
                + (" (the previous attempt stopped before it finished)" if previous else "")
            )
            job.save(update_fields=["state", "attempts", "started_at", "progress", "log"])
    if stopped:
        return _finish_failed(job_id, f"stopped {stopped} times before finishing")

    kind = export_kind_get(job.kind)
    started = timezone.now()
    try:
        made: ExportFile = kind.produce(job.params, _progress(job.pk))
    except Exception as error:  # a failed export is recorded on its job, not re-raised
        logger.exception("export %s failed", job.pk)
        return _finish_failed(job.pk, f"{type(error).__name__}: {error}")

    storage = _storage()
    name = f"{job.pk}/{made.filename}"
    if storage.exists(name):
        storage.delete(name)  # an earlier attempt's file, or a duplicate delivery's
    saved = storage.save(name, ContentFile(made.content))
    seconds = (timezone.now() - started).total_seconds()

    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id)
        if job.state != ExportState.RUNNING:
            return job  # a duplicate delivery finished it first, with the same file name
        now = timezone.now()
        job.state = ExportState.SUCCEEDED
        job.progress = 100
        job.finished_at = now
        job.expires_at = now + timedelta(hours=settings.EXPORT_RETENTION_HOURS)
        job.file_name = saved
        job.filename = made.filename
        job.content_type = made.content_type
        job.size = len(made.content)
        job.sha256 = hashlib.sha256(made.content).hexdigest()
        job.log += _line(f"done: {job.size} bytes in {seconds:.1f} s")
        job.save()
        audit_record(
            action="export.completed",
            actor=Actor.system("exports"),
            object_type=OBJECT_TYPE,
            object_id=job.pk,
            payload={
                "kind": job.kind,
                "sha256": job.sha256,
                "size": job.size,
                "attempts": job.attempts,
            },
        )
    return job


def export_jobs_expire(*, now=None) -> int:
    """Delete the files of exports past their expiry; the jobs stay, as expired.

    Side effects: files removed from the "exports" storage, jobs marked expired, one
    audit `export.files_expired` listing them (none when nothing expired).
    """
    now = now or timezone.now()
    with transaction.atomic():
        jobs = list(
            ExportJob.objects.select_for_update(skip_locked=True).filter(
                state=ExportState.SUCCEEDED, expires_at__lte=now
            )
        )
        if not jobs:
            return 0
        storage = _storage()
        for job in jobs:
            if job.file_name and storage.exists(job.file_name):
                storage.delete(job.file_name)
            job.state = ExportState.EXPIRED
            job.file_name = ""
            job.log += _line("file deleted: expired")
        ExportJob.objects.bulk_update(jobs, ["state", "file_name", "log"])
        audit_record(
            action="export.files_expired",
            actor=Actor.system("exports"),
            object_type=OBJECT_TYPE,
            payload={"jobs": [job.pk for job in jobs]},
        )
    return len(jobs)

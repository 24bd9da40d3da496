"""Export jobs in the base: a retry never makes a second file, a failure is recorded on
the job and audited, expired files are deleted."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.exports.choices import ExportState
from portal.exports.models import ExportJob
from portal.exports.registry import ExportFile, ExportKind, export_kind_register
from portal.exports.services import export_job_request, export_job_run, export_jobs_expire

pytestmark = pytest.mark.django_db

MADE: list[int] = []


def _produce(params, progress):
    MADE.append(params["n"])
    progress(50, "half way")
    return ExportFile(content=b"x" * params["n"], filename="report.txt", content_type="text/plain")


def _broken(params, progress):
    raise ValueError("the source is gone")


export_kind_register(
    ExportKind(name="tests.text", label="Text", produce=_produce, may_read=lambda u, p: True)
)
export_kind_register(
    ExportKind(name="tests.broken", label="Broken", produce=_broken, may_read=lambda u, p: True)
)


@pytest.fixture()
def exports_dir(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "exports"},
        },
    }
    return tmp_path / "exports"


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_export_job_run_again_after_success_does_nothing(auditor, exports_dir):
    """A duplicate delivery of a finished job neither remakes the file nor audits twice."""
    job = export_job_request(kind="tests.text", params={"n": 5}, title="t", requested_by=auditor)
    MADE.clear()
    export_job_run(job_id=job.pk)
    export_job_run(job_id=job.pk)
    assert MADE == [5]
    assert _files(exports_dir) == [f"{job.pk}/report.txt"]
    assert AuditEvent.objects.filter(action="export.completed").count() == 1


def test_export_job_redelivered_mid_way_leaves_one_file(auditor, exports_dir):
    """A worker died after writing the file but before marking the job done: the
    redelivered task starts again and overwrites that file instead of adding one."""
    job = export_job_request(kind="tests.text", params={"n": 7}, title="t", requested_by=auditor)
    (exports_dir / str(job.pk)).mkdir(parents=True)
    (exports_dir / str(job.pk) / "report.txt").write_bytes(b"partial")
    ExportJob.objects.filter(pk=job.pk).update(state=ExportState.RUNNING, attempts=1)
    done = export_job_run(job_id=job.pk)
    assert done.state == ExportState.SUCCEEDED and done.attempts == 2
    assert "previous attempt stopped before it finished" in done.log
    assert _files(exports_dir) == [f"{job.pk}/report.txt"]
    assert (exports_dir / str(job.pk) / "report.txt").read_bytes() == b"x" * 7


def test_export_job_killed_too_often_fails(auditor, exports_dir):
    """A job whose worker keeps dying (three attempts) is failed, not tried forever."""
    job = export_job_request(kind="tests.text", params={"n": 1}, title="t", requested_by=auditor)
    ExportJob.objects.filter(pk=job.pk).update(state=ExportState.RUNNING, attempts=3)
    done = export_job_run(job_id=job.pk)
    assert done.state == ExportState.FAILED
    assert "stopped 3 times" in done.log
    assert _files(exports_dir) == []


def test_export_job_failure_is_recorded_and_audited(auditor, exports_dir):
    """The maker's error ends the job failed with the reason in its log and the ledger."""
    job = export_job_request(kind="tests.broken", params={}, title="t", requested_by=auditor)
    done = export_job_run(job_id=job.pk)
    assert done.state == ExportState.FAILED
    assert "ValueError: the source is gone" in done.log
    event = AuditEvent.objects.get(action="export.failed", object_id=str(job.pk))
    assert event.payload_record.data["reason"] == "ValueError: the source is gone"


def test_export_jobs_expire_deletes_files_and_keeps_jobs(auditor, exports_dir, settings):
    """Past the retention time the file is deleted, the job stays (expired), and one
    audit event lists the jobs."""
    settings.EXPORT_RETENTION_HOURS = 2
    job = export_job_request(kind="tests.text", params={"n": 3}, title="t", requested_by=auditor)
    export_job_run(job_id=job.pk)
    assert export_jobs_expire() == 0
    with time_machine.travel(timezone.now() + timedelta(hours=2, minutes=1)):
        assert export_jobs_expire() == 1
    job.refresh_from_db()
    assert job.state == ExportState.EXPIRED and job.file_name == ""
    assert _files(exports_dir) == []
    event = AuditEvent.objects.get(action="export.files_expired")
    assert event.payload_record.data["jobs"] == [job.pk]

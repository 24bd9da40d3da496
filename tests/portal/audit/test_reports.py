"""The audit report of a period as PDF: printed by an export job, with the approvers'
names, totals, page numbers, a contents page and the checkpoint it was built from."""

import io
from datetime import date

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from portal.accounts.choices import Role
from portal.audit.models import AuditCheckpoint
from portal.audit.reports import AUDIT_PERIOD_REPORT, audit_period_report_pdf
from portal.audit.services import audit_record
from portal.exports.choices import ExportState
from portal.exports.models import ExportJob
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db


def _text(content: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


@pytest.fixture()
def decided(make_user):
    """Two board decisions (one approval, one refusal) and some other events."""
    lead = make_user(Role.DATA_SCIENCE_LEAD, full_name="Dana Lead")
    privacy = make_user(Role.PRIVACY_OFFICER, full_name="Priya Privacy")
    for person, verdict, role in (
        (lead, "approve", "data_science_lead"),
        (privacy, "reject", "privacy_officer"),
    ):
        audit_record(
            action="review.decision_recorded",
            actor=person.audit_actor(),
            object_type="review",
            object_id=7,
            payload={"verdict": verdict, "role": role},
        )
    for i in range(3):
        audit_record(
            action="card.edited",
            actor=lead.audit_actor(),
            object_type="model_version",
            object_id=f"m@{i}",
        )


def test_audit_period_report_names_approvers_totals_pages_and_checkpoint(decided):
    """The text of the PDF holds the approvers by name, the totals, 'Page n of m' and the
    root of the checkpoint signed for it."""
    today = timezone.now().date()
    content = audit_period_report_pdf(since=today, until=today)
    text, pages = _text(content)
    checkpoint = AuditCheckpoint.objects.order_by("-tree_size").first()
    assert checkpoint is not None
    assert "Dana Lead (Data science lead)" in text
    assert "Priya Privacy (Privacy officer)" in text
    assert "1 approvals, 1 refusals" in text
    assert "Contents" in text
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert checkpoint.root_hash in text.replace("\n", "")
    assert "verify-audit.py" in text
    assert pages >= 5  # cover, decisions, totals, events, verification


def test_audit_period_report_leaves_out_events_outside_the_period(decided):
    content = audit_period_report_pdf(since=date(2000, 1, 1), until=date(2000, 1, 31))
    text, _ = _text(content)
    assert "No decision in this period." in text
    assert "Dana Lead" not in text


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


def test_audit_report_page_prints_the_report_as_an_export_job(
    decided, client_for, auditor, exports_dir, monkeypatch, django_capture_on_commit_callbacks
):
    """Asking for a period queues the job; the worker prints it; the job page offers the
    PDF to the auditor."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    client = client_for(auditor)
    today = timezone.now().date().isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audit:report"), {"since": today, "until": today})
    job = ExportJob.objects.get(kind=AUDIT_PERIOD_REPORT)
    assert response.status_code == 302
    assert response["Location"] == reverse("exports:job_detail", kwargs={"pk": job.pk})
    job.refresh_from_db()
    assert job.state == ExportState.SUCCEEDED, job.log
    download = client.get(reverse("exports:job_download", kwargs={"pk": job.pk}))
    text, _ = _text(b"".join(download.streaming_content))
    assert "Dana Lead (Data science lead)" in text


def test_audit_report_page_exports_the_period_as_csv(decided, client_for, auditor):
    """The report's page offers the period's events as CSV too: the trail's export,
    filtered by the same period, with the approvers' names."""
    client = client_for(auditor)
    today = timezone.now().date().isoformat()
    response = client.post(
        reverse("audit:report"), {"since": today, "until": today, "format": "csv"}
    )
    assert response.status_code == 302
    assert response["Location"] == (
        f"{reverse('audit:export', kwargs={'fmt': 'csv'})}?since={today}&until={today}"
    )
    export = client.get(response["Location"])
    assert export.status_code == 200
    rows = b"".join(export.streaming_content).decode()
    assert "review.decision_recorded" in rows and "Dana Lead" in rows
    assert not ExportJob.objects.exists()


def test_audit_report_page_refuses_a_bad_period_with_field_errors(client_for, auditor):
    response = client_for(auditor).post(
        reverse("audit:report"), {"since": "2026-02-01", "until": "2026-01-01"}
    )
    assert response.status_code == 400
    assert "must not be after" in response.content.decode()
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("role", [Role.DATA_SCIENCE_LEAD, Role.DEVOPS, Role.MODEL_OWNER])
def test_audit_report_page_refused_without_auditor_or_admin_role(client_for, make_user, role):
    response = client_for(make_user(role)).post(
        reverse("audit:report"), {"since": "2026-01-01", "until": "2026-01-02"}
    )
    assert response.status_code == 403
    assert not ExportJob.objects.exists()

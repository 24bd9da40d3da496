"""A data subject request's evidence pack: registered by datasubjects as an export kind,
asked for from the request's page, printed by the export job with the request's
history, verification, each source's result, the certificate and the checkpoint; no
e-mail address of the person in it; refused to those who may not read requests."""

import hashlib
import io
from pathlib import Path

import pytest
from django.conf import settings
from pypdf import PdfReader

from datasubjects.choices import RequestKind, TaskState
from datasubjects.evidence import REQUEST_EVIDENCE_PACK, request_evidence_pack_pdf
from datasubjects.models import SourceTask
from datasubjects.services import request_set_state, source_task_run
from portal.accounts.choices import Role
from portal.audit.models import AuditCheckpoint, AuditEvent
from portal.exports.choices import ExportState
from portal.exports.models import ExportJob
from portal.exports.registry import export_kind_get
from tests.datasubjects.test_erasure import crm_with_rules  # noqa: F401 -- fixture
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db


def _text(content: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return text, len(reader.pages)


@pytest.fixture()
def erased(crm_with_rules, seeded_person, verified_request, privacy_officer):  # noqa: F811
    """An erasure request whose CRM task ran (masked and deleted, verified)."""
    dsr = verified_request(email=seeded_person["email"], kind=RequestKind.ERASURE)
    request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    crm = SourceTask.objects.get(request=dsr, source__slug="crm")
    run = source_task_run(task_id=crm.pk)
    assert run.task.state == TaskState.DONE, run.task.error
    dsr.refresh_from_db()
    return dsr, run.task, seeded_person


def test_request_evidence_pack_holds_history_verification_results_and_certificate(erased):
    dsr, crm, person = erased

    text, pages = _text(request_evidence_pack_pdf(request=dsr, progress=lambda *a: None))
    flat = text.replace("\n", " ")
    compact = text.replace("\n", "").replace(" ", "")

    assert f"Evidence pack of request {dsr.public_id}" in flat
    assert "Verification" in flat and dsr.verified_at.strftime("%Y-%m-%d %H:%M") in flat
    assert "Result in each data source" in flat and "CRM" in flat
    assert "Certificate of erasure" in flat
    assert "Rows erased or masked" in flat
    assert "-> 0 row(s)" in flat  # the verification query's finding
    evidence = Path(settings.DSAR_FILES_DIR) / crm.evidence_file
    assert hashlib.sha256(evidence.read_bytes()).hexdigest() in compact
    for event in AuditEvent.objects.filter(object_id=dsr.audit_id):
        assert event.action in flat  # its whole history from the ledger
    checkpoint = AuditCheckpoint.objects.order_by("-tree_size").first()
    assert checkpoint.root_hash in compact
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert person["email"] not in flat and person["email"] not in compact


def test_request_evidence_pack_is_an_export_kind_datasubjects_registers():
    kind = export_kind_get(REQUEST_EVIDENCE_PACK)
    assert kind.label == "Evidence pack of a data subject request (PDF)"


def test_request_evidence_pack_export_job_is_made_for_an_auditor(
    erased,
    client_for,
    make_user,
    django_capture_on_commit_callbacks,
    settings,
    tmp_path,
    monkeypatch,
):
    dsr, _, _ = erased
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "exports"},
        },
    }
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    auditor = make_user(Role.AUDITOR)
    client = client_for(auditor)
    page = client.get(f"/data-subjects/{dsr.public_id}/")
    assert 'data-testid="evidence-pack"' in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/data-subjects/{dsr.public_id}/evidence-pack")

    job = ExportJob.objects.get(kind=REQUEST_EVIDENCE_PACK)
    assert response.status_code == 302 and response["Location"] == f"/exports/{job.pk}/"
    assert job.params == {"public_id": str(dsr.public_id)}
    assert AuditEvent.objects.filter(action="export.requested").exists()
    job.refresh_from_db()
    assert job.state == ExportState.SUCCEEDED, job.log
    download = client.get(f"/exports/{job.pk}/download")
    body = b"".join(download.streaming_content)
    text, _ = _text(body)
    assert str(dsr.public_id) in text.replace("\n", "")


@pytest.mark.parametrize("role", [None, Role.MODEL_OWNER, Role.DATA_SCIENCE_LEAD])
def test_request_evidence_pack_refused_to_those_who_may_not_read_requests(
    erased, client, client_for, make_user, role
):
    dsr, _, _ = erased
    caller = client if role is None else client_for(make_user(role))

    response = caller.post(f"/data-subjects/{dsr.public_id}/evidence-pack")

    if role is None:  # anonymous: sent to sign in
        assert response.status_code == 302 and "login" in response["Location"]
    else:
        assert response.status_code == 403
    assert not ExportJob.objects.filter(kind=REQUEST_EVIDENCE_PACK).exists()


def test_request_evidence_pack_of_an_unverified_request_is_not_found(
    file_request, client_for, privacy_officer
):
    dsr = file_request(kind=RequestKind.ACCESS)

    response = client_for(privacy_officer).post(f"/data-subjects/{dsr.public_id}/evidence-pack")

    assert response.status_code == 404
    assert not ExportJob.objects.exists()

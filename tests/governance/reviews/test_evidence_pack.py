"""A model version's evidence pack as PDF: printed by an export job for auditors, with
its lineage, card, checks, every decision by name, role, time and comment, its life in
the ledger, page numbers and the checkpoint it was built from."""

import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from governance.choices import Target
from governance.reviews.evidence import VERSION_EVIDENCE_PACK, version_evidence_pack_pdf
from governance.reviews.services import review_decide
from portal.accounts.choices import Role
from portal.audit.models import AuditCheckpoint
from portal.exports.choices import ExportState
from portal.exports.models import ExportJob
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db


def _text(content: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


@pytest.fixture()
def decided(version, open_review, make_user):
    """A staging review of the version: one approval with a comment, one refusal."""
    lead = make_user(Role.DATA_SCIENCE_LEAD, full_name="Dana Lead")
    privacy = make_user(Role.PRIVACY_OFFICER, full_name="Priya Privacy")
    review = open_review(version, Target.CANARY)
    review_decide(
        review=review,
        reviewer=lead,
        verdict="approve",
        role=Role.DATA_SCIENCE_LEAD,
        comment="Backtest holds on every region.",
    )
    review_decide(
        review=review,
        reviewer=privacy,
        verdict="reject",
        role=Role.PRIVACY_OFFICER,
        comment="Fairness rows missing for age bands.",
    )
    return version


def test_version_evidence_pack_names_every_decision_and_the_checkpoint(decided):
    """Names, roles, comments, the automated checks, page numbers and the signed root."""
    text, pages = _text(version_evidence_pack_pdf(version=decided, progress=lambda *a: None))
    flat = text.replace("\n", " ")
    checkpoint = AuditCheckpoint.objects.order_by("-tree_size").first()
    assert f"Evidence pack {decided.model.slug} {decided.version}" in flat
    assert "Dana Lead" in flat and "Data science lead" in flat
    assert "Priya Privacy" in flat and "Privacy officer" in flat
    assert "Backtest holds on every region." in flat
    assert "Fairness rows missing for age bands." in flat
    assert "Automated check" in flat
    assert "review.decision_recorded" in flat  # its life, from the ledger
    assert decided.image_digest in text.replace("\n", "")
    assert checkpoint.root_hash in text.replace("\n", "")
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert "Contents" in text


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


def _url(version) -> str:
    return reverse(
        "governance:version_evidence_pack",
        kwargs={"model": version.model.slug, "version": version.version},
    )


def test_version_evidence_pack_is_printed_by_an_export_job_for_the_auditor(
    decided, client_for, auditor, exports_dir, monkeypatch, django_capture_on_commit_callbacks
):
    """The button queues a job, a worker prints it, the job page offers the PDF."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    client = client_for(auditor)
    page = client.get(
        reverse(
            "governance:version_detail",
            kwargs={"model": decided.model.slug, "version": decided.version},
        )
    ).content.decode()
    assert _url(decided) in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(decided))
    job = ExportJob.objects.get(kind=VERSION_EVIDENCE_PACK)
    assert response["Location"] == reverse("exports:job_detail", kwargs={"pk": job.pk})
    job.refresh_from_db()
    assert job.state == ExportState.SUCCEEDED, job.log
    download = client.get(reverse("exports:job_download", kwargs={"pk": job.pk}))
    text, _ = _text(b"".join(download.streaming_content))
    assert "Dana Lead" in text


@pytest.mark.parametrize("role", [Role.DATA_SCIENCE_LEAD, Role.DEVOPS, Role.MODEL_OWNER])
def test_version_evidence_pack_refused_to_anyone_but_auditors_and_admins(
    version, client_for, make_user, role
):
    client = client_for(make_user(role))
    response = client.post(_url(version))
    assert response.status_code == 403
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("role", [Role.DATA_SCIENCE_LEAD, Role.DEVOPS, Role.PRIVACY_OFFICER])
def test_version_page_offers_the_evidence_pack_and_timeline_only_to_audit_readers(
    version, client_for, make_user, role
):
    """People who may not read the ledger are not offered a button and a timeline link
    that would answer 403; the auditor's page keeps both."""
    timeline = reverse(
        "audit:timeline",
        kwargs={
            "object_type": "model_version",
            "object_id": f"{version.model.slug}@{version.version}",
        },
    )
    page = reverse(
        "governance:version_detail",
        kwargs={"model": version.model.slug, "version": version.version},
    )
    body = client_for(make_user(role)).get(page).content.decode()
    assert _url(version) not in body and timeline not in body
    body = client_for(make_user(Role.AUDITOR)).get(page).content.decode()
    assert _url(version) in body and timeline in body


def test_version_evidence_pack_refuses_get_and_unknown_versions(version, client_for, auditor):
    client = client_for(auditor)
    assert client.get(_url(version)).status_code == 405
    missing = reverse(
        "governance:version_evidence_pack",
        kwargs={"model": version.model.slug, "version": "9.9.9"},
    )
    assert client.post(missing).status_code == 404

"""Card PDFs of any size: a small card prints inside the request, a big one becomes an
export job a worker prints, with a page that follows its progress and then offers the
download, to the people who may read the card only."""

import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from governance.selectors.card_exports import CARD_PDF_EXPORT, card_export_size
from portal.audit.models import AuditEvent
from portal.exports.choices import ExportState
from portal.exports.models import ExportJob
from tests.governance.test_cards import fill_card
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db

MODEL = "demand-forecasting"
STORES = {f"s{i:04d}": {"mae": 300.0 + i} for i in range(40)}


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


@pytest.fixture()
def eager(monkeypatch):
    """Queued tasks run in the test process when the transaction commits."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


@pytest.fixture()
def big(register, make_user, settings):
    """A card with 43 performance rows, over a bound of 20 rows."""
    settings.CARD_PDF_SYNC_MAX_ROWS = 20
    version = register("1.0.0", metric_slices={"store": STORES})
    fill_card(version.card, make_user("data_science_lead"))
    return version


def pdf_url(version="1.0.0"):
    return reverse(
        "governance:card_export", kwargs={"model": MODEL, "version": version, "fmt": "pdf"}
    )


def test_card_size_counts_rows_and_characters(big):
    """The bound is decided on the card's size: metric rows overall and per slice, and
    the characters of its sections."""
    size = card_export_size(card=big.card)
    assert size.rows == 3 + 40
    assert size.characters > len("Two years of sales.")
    assert not size.fits_a_request


def test_card_pdf_small_card_downloads_in_the_request(register, client_for, auditor):
    """Under the bound the PDF is the response itself, and no job is made."""
    register("1.0.0")
    response = client_for(auditor).get(pdf_url())
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert ExportJob.objects.count() == 0


def test_card_pdf_big_card_becomes_an_export_job(big, client_for, auditor, exports_dir):
    """Over the bound the request answers at once with the job's page; asking again
    while it is queued follows the same job."""
    client = client_for(auditor)
    response = client.get(pdf_url())
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("exports:job_detail", kwargs={"pk": job.pk})
    assert (job.kind, job.params, job.state) == (
        CARD_PDF_EXPORT,
        {"card_id": big.card.pk},
        ExportState.QUEUED,
    )
    assert job.requested_by == auditor
    requested = AuditEvent.objects.get(action="export.requested", object_id=str(job.pk))
    assert requested.actor_id == auditor.audit_actor().id
    again = client.get(pdf_url())
    assert again["Location"] == response["Location"]
    assert ExportJob.objects.count() == 1

    page = client.get(response["Location"]).content.decode()
    assert "Model card PDF: demand-forecasting 1.0.0" in page
    assert 'data-testid="export-state">Queued<' in page
    assert f'hx-get="/exports/{job.pk}/progress"' in page
    assert "Download" not in page


def test_card_pdf_job_runs_then_page_offers_the_download(
    big, client_for, auditor, exports_dir, eager, django_capture_on_commit_callbacks
):
    """The worker prints the card; the progress partial then stops polling, shows the
    log and the link, and the download is the card's PDF; completion is audited."""
    client = client_for(auditor)
    with django_capture_on_commit_callbacks(execute=True):
        location = client.get(pdf_url())["Location"]
    job = ExportJob.objects.get()
    assert job.state == ExportState.SUCCEEDED
    assert job.progress == 100 and job.attempts == 1
    assert "laying out 10 sections and 43 metric rows" in job.log

    partial = client.get(reverse("exports:job_progress", kwargs={"pk": job.pk})).content.decode()
    assert 'data-testid="export-state">Ready<' in partial
    assert "hx-trigger" not in partial
    assert f'href="/exports/{job.pk}/download"' in partial
    assert "model-card-demand-forecasting-1.0.0.pdf" in client.get(location).content.decode()

    download = client.get(reverse("exports:job_download", kwargs={"pk": job.pk}))
    body = b"".join(download.streaming_content)
    assert download["Content-Type"] == "application/pdf"
    assert 'filename="model-card-demand-forecasting-1.0.0.pdf"' in download["Content-Disposition"]
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
    assert "store=s0039" in text
    completed = AuditEvent.objects.get(action="export.completed", object_id=str(job.pk))
    assert completed.payload_record.data["sha256"] == job.sha256


def test_card_pdf_job_refused_to_people_who_may_not_read_the_card(
    big, client_for, auditor, outsider, client, exports_dir, eager,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """Someone without a role sees neither the job's page, its progress nor its file;
    anonymous callers are sent to sign in."""
    with django_capture_on_commit_callbacks(execute=True):
        client_for(auditor).get(pdf_url())
    job = ExportJob.objects.get(state=ExportState.SUCCEEDED)
    client.logout()
    names = ("exports:job_detail", "exports:job_progress", "exports:job_download")
    for name in names:
        url = reverse(name, kwargs={"pk": job.pk})
        assert client.get(url).status_code == 302
    outsider_client = client_for(outsider)
    for name in names:
        response = outsider_client.get(reverse(name, kwargs={"pk": job.pk}))
        assert response.status_code == 403, name
        assert b"%PDF" not in b"".join(getattr(response, "streaming_content", [response.content]))


def test_export_job_page_shows_progress_while_running(big, client_for, auditor, exports_dir):
    """While a worker prints, the partial shows its percentage and log and keeps polling."""
    client = client_for(auditor)
    client.get(pdf_url())
    job = ExportJob.objects.get()
    ExportJob.objects.filter(pk=job.pk).update(
        state=ExportState.RUNNING, progress=40, log="18:00:00 laying out 10 sections\n"
    )
    partial = client.get(reverse("exports:job_progress", kwargs={"pk": job.pk})).content.decode()
    assert 'data-testid="export-state">Running<' in partial
    assert 'value="40"' in partial and "40%" in partial
    assert "laying out 10 sections" in partial
    assert 'hx-trigger="every 2s"' in partial
    assert "Download" not in partial

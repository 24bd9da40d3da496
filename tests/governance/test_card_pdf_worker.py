"""A big card's PDF printed by a real Celery worker (prefork, on Redis, against the
test PostgreSQL database): the job page follows it to the download."""

import importlib
import time

import pytest
from celery import Celery
from django.apps import apps
from django.urls import reverse

from governance.models import ModelVersion
from portal.exports.choices import ExportState
from portal.exports.models import ExportJob
from tests.governance.test_card_pdf_jobs import STORES, pdf_url
from tests.governance.test_cards import fill_card
from tests.support.celery_worker import BROKER, celery_workers


@pytest.fixture()
def worker(transactional_db, settings, tmp_path):
    """The three models (transactional tests start empty), a shared exports directory,
    and one worker process on the test Redis database."""
    importlib.import_module("governance.migrations.0002_the_three_models").create_models(apps, None)
    exports = tmp_path / "exports"
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": exports},
        },
    }
    with celery_workers({"EXPORTS_DIR": str(exports)}, loglevel="warning") as start:
        start()
        yield exports


@pytest.mark.postgres
@pytest.mark.redis
def test_card_pdf_job_runs_on_a_real_worker(worker, register, make_user, client_for, settings):
    """The request queues the job; a worker on Redis prints it; the page then shows it
    ready with the link, and the file is in the shared exports storage."""
    settings.CARD_PDF_SYNC_MAX_ROWS = 20
    version: ModelVersion = register("1.0.0", metric_slices={"store": STORES})
    fill_card(version.card, make_user("data_science_lead"))
    client = client_for(make_user("auditor"))
    location = client.get(pdf_url())["Location"]
    job = ExportJob.objects.get()
    assert job.state == ExportState.QUEUED
    # The test process's own Celery app talks to an in-memory broker; hand the job to
    # the worker's broker as the web pod would.
    Celery(broker=BROKER).send_task("exports.run", args=[job.pk])

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if not job.is_active:
            break
        time.sleep(0.5)
    assert job.state == ExportState.SUCCEEDED, job.log
    page = client.get(location).content.decode()
    assert f'href="{reverse("exports:job_download", kwargs={"pk": job.pk})}"' in page
    assert (worker / job.file_name).read_bytes().startswith(b"%PDF-")
    assert [p.name for p in (worker / str(job.pk)).iterdir()] == [job.filename]

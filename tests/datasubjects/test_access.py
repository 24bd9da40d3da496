"""The access package: JSON and CSV per source, a readable summary with the Art. 15
information and the profiling explained from the model cards, downloaded by the
privacy officer or by the verified requester through a link that expires."""

import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from datasubjects.choices import TaskState
from datasubjects.models import SourceTask
from datasubjects.services import request_set_state
from governance.services.cards import card_section_update
from governance.services.registry import version_register
from portal.audit.actors import Actor
from tests.governance.conftest import registration_body
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture()
def segmentation_card(make_user):
    """customer-segmentation 1.0.0 with its card's model details written."""
    version, _ = version_register(
        model_slug="customer-segmentation",
        data=registration_body("1.0.0", metrics={"silhouette": 0.41}, metric_slices=None),
        actor=Actor.system("tests"),
    )
    card_section_update(
        card=version.card,
        key="model_details",
        content="Groups customers into five segments by how often they buy, how much "
        "they spend and which categories they favour (k-means on RFM features).",
        data=None,
        actor_user=make_user("data_science_lead"),
    )
    return version


@pytest.fixture()
def completed_access(
    monkeypatch,
    registered_sources,
    seeded_person,
    verified_request,
    privacy_officer,
    segmentation_card,
    django_capture_on_commit_callbacks,
):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    dsr = verified_request(email=seeded_person["email"])
    with django_capture_on_commit_callbacks(execute=True):
        request_set_state(request=dsr, state="in_progress", user=privacy_officer)
    dsr.refresh_from_db()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request_set_state(request=dsr, state="completed", user=privacy_officer)
    dsr.refresh_from_db()
    return dsr


def _zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_access_package_has_json_and_csv_per_source_and_a_summary(
    completed_access, client_for, privacy_officer, seeded_person
):
    """Once the last source task is done the package exists; the officer downloads a
    zip with JSON and CSV of every table of every source, and a summary that carries
    the Art. 15 information and the segmentation card's explanation."""
    assert all(
        t.state == TaskState.DONE for t in SourceTask.objects.filter(request=completed_access)
    )
    response = client_for(privacy_officer).get(
        reverse("datasubjects:request_package", args=[completed_access.public_id])
    )
    assert response.status_code == 200
    package = _zip(response)
    names = set(package.namelist())
    for expected in (
        "lake/customers.json",
        "lake/customers.csv",
        "lake/transactions.json",
        "lake/transactions.csv",
        "crm/crm_contacts.json",
        "crm/crm_interactions.csv",
        "portal/data_subject_requests.json",
        "summary.html",
    ):
        assert expected in names
    customers = json.loads(package.read("lake/customers.json"))
    assert [c["email"] for c in customers] == [seeded_person["email"]]
    csv_lines = package.read("lake/transactions.csv").decode().splitlines()
    assert csv_lines[0].startswith("transaction_id,ts,customer_id")
    assert len(csv_lines) - 1 == len(json.loads(package.read("lake/transactions.json")))
    summary = package.read("summary.html").decode()
    assert "Who receives it" in summary and "How long we keep it" in summary
    assert re.search(r"<h3>Customer segmentation: [^<]+ version 1\.0\.0</h3>", summary)
    assert "k-means on RFM features" in summary


def test_access_package_link_is_emailed_and_expires(completed_access, client, settings):
    """Completing the request e-mails the requester a link that downloads the package
    for DSAR_PACKAGE_LINK_HOURS and then says it expired."""
    message = mail.outbox[-1]
    assert message.to == [completed_access.email]
    path = re.search(r"https?://[^/\s]+(/privacy/requests/package/\S+/)", message.body).group(1)
    assert "summary.html" in _zip(client.get(path)).namelist()
    with time_machine.travel(timezone.now() + timedelta(hours=73)):
        expired = client.get(path)
    assert expired.status_code == 410
    # It names the download link (not the status link) and where a fresh one is.
    page = expired.content.decode()
    assert f"download links work for {settings.DSAR_PACKAGE_LINK_HOURS} hours" in page
    assert "status link" in page and "fresh download link" in page


def test_access_package_link_forged_or_other_roles_refused(
    completed_access, client, client_for, make_user
):
    """A tampered link finds nothing; a data science lead may not download packages."""
    assert client.get("/privacy/requests/package/forged:token/").status_code == 404
    response = client_for(make_user("data_science_lead")).get(
        reverse("datasubjects:request_package", args=[completed_access.public_id])
    )
    assert response.status_code == 403


def test_status_page_offers_the_download_once_completed(completed_access, client):
    """The requester's status page links to the package of a completed request."""
    from datasubjects.services import request_status_token

    token = request_status_token(request=completed_access)
    page = client.get(reverse("datasubjects:public_status", args=[token])).content.decode()
    assert 'data-testid="package-link"' in page


def test_privacy_notice_explains_profiling_from_the_cards(client, segmentation_card):
    """The public privacy notice needs no login and explains segmentation in the card's
    own words, with the purposes and retention."""
    response = client.get(reverse("datasubjects:privacy_notice"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "k-means on RFM features" in body
    assert "How long we keep it" in body and "Customer segmentation (version 1.0.0)" in body

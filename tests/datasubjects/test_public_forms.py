"""The public request forms: no login, e-mail code verification, rate limits, the same
answer for known and unknown addresses, and a status link that expires."""

import re
from datetime import datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse

from datasubjects.models import DataSubjectRequest
from portal.audit.models import AuditEvent, AuditPayload
from tests.datasubjects.conftest import last_code

pytestmark = pytest.mark.django_db

NEW = reverse("datasubjects:public_request_new")


@pytest.fixture(autouse=True)
def _fresh_limits():
    cache.clear()
    yield
    cache.clear()


def _file(client, email="customer-1@example.com", kind="access", **extra):
    return client.post(NEW, {"kind": kind, "email": email, **extra})


def test_public_form_opens_without_login(client):
    """Anyone can open the form: it lists the rights."""
    response = client.get(NEW)
    assert response.status_code == 200
    assert "Erasure (Art. 17)" in response.content.decode()


def test_public_form_enforces_csrf():
    """A post without the CSRF token is refused and files nothing."""
    response = Client(enforce_csrf_checks=True).post(
        NEW, {"kind": "access", "email": "customer-1@example.com"}
    )
    assert response.status_code == 403
    assert not DataSubjectRequest.objects.exists()


def test_public_form_answers_the_same_for_known_and_unknown_addresses(
    client, django_capture_on_commit_callbacks
):
    """An address in the customer data and one nowhere get the same page, the same
    e-mail and the same work (no enumeration: nothing is looked up before the code)."""
    pages = []
    for email in ("customer-1@example.com", "nobody-here@example.org"):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = _file(client, email=email)
        page = client.get(response["Location"])
        pages.append(
            (
                response.status_code,
                re.sub(r"[0-9a-f-]{36}", "ID", response["Location"]),
                # The request's id and the (per-render masked) CSRF token differ.
                re.sub(r"[0-9a-f-]{36}|[A-Za-z0-9]{64}", "ID", page.content.decode()),
                len(callbacks),
            )
        )
    assert pages[0] == pages[1]
    bodies = [re.sub(r"\d{6}", "CODE", m.body) for m in mail.outbox]
    assert bodies[0] == bodies[1]


def test_public_form_code_verifies_and_links_to_status(client, django_capture_on_commit_callbacks):
    """The right code makes the request pending and lands on its status page, which
    the e-mailed link also opens."""
    with django_capture_on_commit_callbacks(execute=True):
        verify_url = _file(client)["Location"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(verify_url, {"code": last_code("customer-1@example.com")})
    assert response.status_code == 302
    status = client.get(response["Location"])
    assert 'data-testid="dsr-status">Pending<' in status.content.decode()
    dsr = DataSubjectRequest.objects.get()
    assert dsr.state == "pending" and dsr.due_on is not None
    link = re.search(r"http://\S+/privacy/requests/status/\S+/", mail.outbox[-1].body).group(0)
    assert client.get(link.split("8000", 1)[1]).status_code == 200


def test_public_code_expires_after_ten_minutes_and_a_new_one_is_sent(
    client, django_capture_on_commit_callbacks
):
    """Eleven minutes later the right code no longer works; a new code is e-mailed and
    that one verifies."""
    start = datetime(2027, 5, 3, 10, 0)
    with time_machine.travel(start, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            verify_url = _file(client)["Location"]
        old = last_code("customer-1@example.com")
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(verify_url, {"code": old})
        assert response.status_code == 200
        assert "new one" in response.content.decode()
        assert DataSubjectRequest.objects.get().verified_at is None
        new = last_code("customer-1@example.com")
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(verify_url, {"code": new}).status_code == 302
    assert DataSubjectRequest.objects.get().state == "pending"


def test_public_code_three_wrong_attempts_replace_the_code(
    client, django_capture_on_commit_callbacks
):
    """Two wrong codes say how many tries are left; the third sends a new code, after
    which the old right code fails."""
    with django_capture_on_commit_callbacks(execute=True):
        verify_url = _file(client)["Location"]
    right = last_code("customer-1@example.com")
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    first = client.post(verify_url, {"code": wrong})
    assert "2 attempt(s) left" in first.content.decode()
    client.post(verify_url, {"code": wrong})
    with django_capture_on_commit_callbacks(execute=True):
        third = client.post(verify_url, {"code": wrong})
    assert "new one" in third.content.decode()
    assert len(mail.outbox) == 2
    new = last_code("customer-1@example.com")
    if new == right:  # one chance in a million: the new code drew the same digits
        pytest.skip("the new code happens to equal the old one")
    assert client.post(verify_url, {"code": right}).status_code == 200
    assert DataSubjectRequest.objects.get().verified_at is None


@override_settings(DSAR_RATE_LIMIT_PER_ADDRESS=2, DSAR_RATE_LIMIT_PER_IP=100)
def test_public_code_guessing_is_rate_limited_per_address(
    client, django_capture_on_commit_callbacks
):
    """Each third wrong code sends a new one, so guessing never ran out: now the tries
    for one address are capped at three per request the address may file in the hour
    (2 x 3 here), from any client IP; past it the form answers 429, checks nothing and
    e-mails nothing, and the right code is refused too."""
    with django_capture_on_commit_callbacks(execute=True):
        verify_url = _file(client)["Location"]
    right = last_code("customer-1@example.com")
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [client.post(verify_url, {"code": wrong}).status_code for _ in range(6)]
    assert statuses == [200] * 6
    sent = len(mail.outbox)
    assert sent == 3  # the first code and two replacements
    other_ip = Client(REMOTE_ADDR="203.0.113.9")
    with django_capture_on_commit_callbacks(execute=True):
        refused = other_ip.post(verify_url, {"code": last_code("customer-1@example.com")})
    assert refused.status_code == 429
    assert len(mail.outbox) == sent
    assert DataSubjectRequest.objects.get().verified_at is None


@override_settings(DSAR_RATE_LIMIT_PER_ADDRESS=100, DSAR_RATE_LIMIT_PER_IP=1)
def test_public_code_guessing_is_rate_limited_per_ip(client, django_capture_on_commit_callbacks):
    """One client IP trying codes of many requests meets its own cap (1 x 3 here)."""
    with django_capture_on_commit_callbacks(execute=True):
        verify_url = _file(client)["Location"]
    statuses = [client.post(verify_url, {"code": "000000"}).status_code for _ in range(4)]
    assert statuses[-1] == 429 and statuses[:3] == [200, 200, 200]


@override_settings(DSAR_RATE_LIMIT_PER_ADDRESS=2, DSAR_RATE_LIMIT_PER_IP=100)
def test_public_form_rate_limits_per_address(client):
    """The third request for one address within the hour gets a 429 and files nothing."""
    assert _file(client).status_code == 302
    assert _file(client, email="CUSTOMER-1@example.com").status_code == 302
    third = _file(client)
    assert third.status_code == 429
    assert DataSubjectRequest.objects.count() == 2
    assert _file(client, email="other@example.org").status_code == 302


@override_settings(DSAR_RATE_LIMIT_PER_ADDRESS=100, DSAR_RATE_LIMIT_PER_IP=3)
def test_public_form_rate_limits_per_ip(client):
    """Rotating addresses from one client IP still meets the per-IP limit."""
    statuses = [_file(client, email=f"p{n}@example.org").status_code for n in range(4)]
    assert statuses == [302, 302, 302, 429]
    other_ip = Client(REMOTE_ADDR="203.0.113.9")
    assert _file(other_ip, email="p9@example.org").status_code == 302


def test_public_status_link_expires(client, django_capture_on_commit_callbacks, settings):
    """The status link works within DSAR_STATUS_LINK_DAYS and says it expired after."""
    start = datetime(2027, 5, 3, 10, 0)
    with time_machine.travel(start, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            verify_url = _file(client)["Location"]
        with django_capture_on_commit_callbacks(execute=True):
            status_url = client.post(verify_url, {"code": last_code("customer-1@example.com")})[
                "Location"
            ]
    later = start + timedelta(days=settings.DSAR_STATUS_LINK_DAYS, hours=1)
    with time_machine.travel(later, tick=False):
        response = client.get(status_url)
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert client.get(status_url[:-3] + "xx/").status_code == 404


def test_public_form_on_behalf_needs_proof_and_codes_the_agent(
    client, django_capture_on_commit_callbacks
):
    """An agent without proof is told to attach it; with proof the code goes to the
    agent, and the ledger holds no e-mail address."""
    missing = _file(client, agent_name="A. Agent", agent_email="agent@example.net")
    assert missing.status_code == 200
    assert "Needed when you act for someone else." in missing.content.decode()
    proof = SimpleUploadedFile("mandate.pdf", b"%PDF-1.4 signed mandate", "application/pdf")
    with django_capture_on_commit_callbacks(execute=True):
        response = _file(
            client, agent_name="A. Agent", agent_email="agent@example.net", agent_proof=proof
        )
    assert response.status_code == 302
    dsr = DataSubjectRequest.objects.get()
    assert dsr.on_behalf and dsr.agent_proof.read() == b"%PDF-1.4 signed mandate"
    assert mail.outbox[-1].to == ["agent@example.net"]
    filed = AuditEvent.objects.get(action="dsr.filed")
    assert filed.object_id == str(dsr.public_id)
    payloads = " ".join(str(p.data) for p in AuditPayload.objects.all())
    assert "@" not in payloads


def test_public_form_bad_input_shows_field_errors(client):
    """An unknown right and a malformed address come back as field errors, not a 500."""
    response = client.post(NEW, {"kind": "everything", "email": "not-an-address"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Select a valid choice" in body and "Enter a valid email address" in body

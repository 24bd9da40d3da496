"""The consent ledger: append-only records per purpose, fed by the public withdrawal
form, the current state derived from the newest record, used by the suppression list;
and the privacy officer's consent page (search, history, filters, CSV, paging)."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from datasubjects.choices import ConsentPurpose, ConsentSource, RequestKind
from datasubjects.models import ConsentRecord
from datasubjects.notices import PRIVACY_NOTICE_VERSION
from datasubjects.pseudonyms import customer_key, subject_ref_for, suppression_key
from datasubjects.selectors import consent_state_for, suppression_keys_by_purpose
from datasubjects.services.consent import consent_record
from pipelines.suppression import suppression_read
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db

PAGE = reverse("datasubjects:consent_list")
EXPORT = reverse("datasubjects:consent_export")
SYSTEM = Actor.system("tests")


@pytest.fixture(autouse=True)
def _list_file(settings, tmp_path):
    settings.DSAR_SUPPRESSION_LIST = tmp_path / "suppression.json"
    return settings.DSAR_SUPPRESSION_LIST


def _give(email, *purposes, customer_id="", given=True, source=ConsentSource.SIGNUP):
    return consent_record(
        email=email,
        customer_id=customer_id,
        purposes=list(purposes),
        given=given,
        source=source,
        actor=SYSTEM,
    )


def test_withdrawal_form_records_the_withdrawal_when_verified(
    registered_sources, seeded_person, verified_request, monkeypatch, _list_file
):
    """A verified consent withdrawal is in the ledger at once (Art. 7(3): as easy as
    giving), for the purposes ticked; the worker then maps the person to their
    customer key, so the suppression list leaves them out of profiling."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    dsr = verified_request(
        email=seeded_person["email"],
        kind=RequestKind.CONSENT_WITHDRAWAL,
        consent_purposes=[ConsentPurpose.PROFILING],
    )
    (record,) = ConsentRecord.objects.all()
    assert (record.purpose, record.given, record.source, record.request_id) == (
        ConsentPurpose.PROFILING,
        False,
        ConsentSource.WITHDRAWAL_REQUEST,
        dsr.pk,
    )
    assert record.subject_ref == subject_ref_for(seeded_person["email"])
    assert record.notice_version == PRIVACY_NOTICE_VERSION
    event = AuditEvent.objects.get(action="consent.withdrawn")
    assert event.payload_record.data["purposes"] == ["profiling"]
    assert seeded_person["email"] not in str(event.payload_record.data)
    listed = suppression_read(_list_file, key=suppression_key())
    assert listed.suppressed(seeded_person["customer_id"], "profiling")
    assert not listed.suppressed(seeded_person["customer_id"], "personalisation")


def test_withdrawal_with_nothing_ticked_withdraws_every_purpose(verified_request):
    verified_request(email="someone@example.com", kind=RequestKind.CONSENT_WITHDRAWAL)
    assert sorted(ConsentRecord.objects.values_list("purpose", "given")) == [
        ("marketing", False),
        ("personalisation", False),
        ("profiling", False),
    ]


def test_public_form_refuses_an_unknown_purpose(client):
    response = client.post(
        reverse("datasubjects:public_request_new"),
        {"kind": "consent_withdrawal", "email": "a@example.com", "consent_purposes": ["x"]},
    )
    assert response.status_code == 200
    assert "consent_purposes" in response.context["form"].errors
    assert not ConsentRecord.objects.exists()


def test_ledger_is_append_only():
    (record,) = _give("a@example.com", ConsentPurpose.MARKETING)
    record.given = False
    with pytest.raises(ValueError, match="append-only"):
        record.save()
    with pytest.raises(ValueError, match="append-only"):
        record.delete()
    assert ConsentRecord.objects.get().given is True


def test_current_state_is_the_newest_record_per_purpose():
    _give("a@example.com", ConsentPurpose.PROFILING, ConsentPurpose.MARKETING)
    _give("a@example.com", ConsentPurpose.PROFILING, given=False)
    assert consent_state_for(subject_ref=subject_ref_for("a@example.com")) == {
        "profiling": False,
        "marketing": True,
    }
    _give("a@example.com", ConsentPurpose.PROFILING)
    assert consent_state_for(subject_ref=subject_ref_for("a@example.com"))["profiling"]


def test_withdrawn_consent_feeds_the_suppression_list():
    """Profiling withdrawn: left out of profiling and training, still personalised;
    a person who gave consent again is not listed; marketing does not count."""
    _give("a@example.com", ConsentPurpose.PROFILING, customer_id="C1")
    _give("a@example.com", ConsentPurpose.PROFILING, given=False)
    _give("b@example.com", ConsentPurpose.PERSONALISATION, customer_id="C2", given=False)
    _give("b@example.com", ConsentPurpose.PERSONALISATION)
    _give("c@example.com", ConsentPurpose.MARKETING, customer_id="C3", given=False)
    keys = suppression_keys_by_purpose()
    assert keys == {
        "training": {customer_key("C1")},
        "profiling": {customer_key("C1")},
        "personalisation": set(),
    }


def test_consent_record_refuses_bad_input():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        consent_record(email="", purposes=["nope"], given=True, source="x", actor=SYSTEM)
    assert set(error.value.message_dict) == {"email", "purposes", "source"}


def test_page_finds_a_person_by_address_or_customer_id_with_history(client_for, auditor):
    """Search by address or customer id shows that person's history, newest first, and
    their current state per purpose; other people do not show."""
    _give("a@example.com", ConsentPurpose.PROFILING, customer_id="C1")
    _give("a@example.com", ConsentPurpose.PROFILING, given=False)
    _give("b@example.com", ConsentPurpose.MARKETING)
    client = client_for(auditor)
    response = client.get(PAGE, {"person": "a@example.com"})
    records = list(response.context["page"])
    assert [(r.purpose, r.given) for r in records] == [("profiling", False), ("profiling", True)]
    assert response.context["current"][0] == ("Profiling for segmentation", False)
    page = response.content.decode()
    assert 'data-testid="consent-current"' in page and "withdrawn" in page
    by_id = client.get(PAGE, {"person": "C1"}).context["page"]
    assert [r.customer_key for r in by_id] == [customer_key("C1")]
    only_marketing = client.get(PAGE, {"purpose": "marketing"}).context["page"]
    assert [r.subject_ref for r in only_marketing] == [subject_ref_for("b@example.com")]
    withdrawn = client.get(PAGE, {"state": "withdrawn"}).context["page"]
    assert [r.given for r in withdrawn] == [False]


def test_page_paginates(client_for, privacy_officer):
    for n in range(51):
        _give(f"p{n}@example.com", ConsentPurpose.MARKETING)
    client = client_for(privacy_officer)
    first = client.get(PAGE)
    assert len(first.context["page"]) == 50
    assert "Page 1 of 2" in first.content.decode()
    assert len(client.get(PAGE, {"page": 2}).context["page"]) == 1


@pytest.mark.parametrize("count", [1, 3])
def test_page_query_count_is_flat(client_for, privacy_officer, django_assert_num_queries, count):
    for n in range(count):
        _give(f"p{n}@example.com", ConsentPurpose.MARKETING)
    client = client_for(privacy_officer)
    with django_assert_num_queries(5):
        response = client.get(PAGE)
    assert len(response.context["page"]) == count


def test_export_is_the_filtered_ledger_as_csv(client_for, auditor):
    _give("a@example.com", ConsentPurpose.PROFILING, customer_id="C1")
    _give("b@example.com", ConsentPurpose.MARKETING, given=False)
    response = client_for(auditor).get(EXPORT, {"state": "withdrawn"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["purpose"], r["state"], r["subject_ref"]) for r in rows] == [
        ("marketing", "withdrawn", subject_ref_for("b@example.com"))
    ]
    assert "b@example.com" not in str(rows)


def test_officer_records_consent_on_the_page(client_for, privacy_officer):
    response = client_for(privacy_officer).post(
        reverse("datasubjects:consent_record"),
        {"email": "a@example.com", "customer_id": "C9", "purposes": ["marketing"], "given": "0"},
    )
    assert response.status_code == 302
    record = ConsentRecord.objects.get()
    assert (record.purpose, record.given, record.source, record.customer_key) == (
        "marketing",
        False,
        ConsentSource.PRIVACY_OFFICER,
        customer_key("C9"),
    )
    assert AuditEvent.objects.filter(action="consent.withdrawn").count() == 1


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.PORTAL_ADMIN])
def test_readers_may_not_record_consent(client_for, make_user, role):
    response = client_for(make_user(role)).post(
        reverse("datasubjects:consent_record"),
        {"email": "a@example.com", "purposes": ["marketing"], "given": "1"},
    )
    assert response.status_code == 403
    assert not ConsentRecord.objects.exists()


def test_other_roles_and_anonymous_are_refused_the_consent_pages(client_for, make_user):
    _give("a@example.com", ConsentPurpose.MARKETING)
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    for url in (PAGE, EXPORT):
        assert Client().get(url).status_code == 302
        refused = client_for(lead).get(url)
        assert refused.status_code == 403
        assert b"a@example.com" not in refused.content


def test_access_to_the_portal_includes_the_consent_history():
    """The portal's own records (a source of every access request) hold the person's
    consent records, oldest first, and nobody else's."""
    from datasubjects.connectors import Identity, PortalConnector

    _give("a@example.com", ConsentPurpose.PROFILING)
    _give("a@example.com", ConsentPurpose.PROFILING, given=False)
    _give("b@example.com", ConsentPurpose.MARKETING)
    found = PortalConnector({}).find(
        Identity(email="a@example.com", subject_ref=subject_ref_for("a@example.com"))
    )
    assert [(r["purpose"], r["state"]) for r in found.tables["consent_records"]] == [
        ("profiling", "given"),
        ("profiling", "withdrawn"),
    ]


def test_privacy_notice_names_its_version_and_the_way_to_withdraw(client):
    """Consent is recorded against the notice's version: the notice shows it."""
    page = client.get(reverse("datasubjects:privacy_notice")).content.decode()
    assert f"Version {PRIVACY_NOTICE_VERSION}" in page
    assert reverse("datasubjects:public_request_new") in page

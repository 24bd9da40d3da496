"""The privacy officer's pages: the queue by deadline, a request's detail and the
lifecycle actions; auditors read and change nothing."""

from datetime import date, datetime

import pytest
import time_machine
from django.urls import reverse

from datasubjects.models import DataSubjectRequest
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _detail(dsr):
    return reverse("datasubjects:request_detail", args=[dsr.public_id])


def test_queue_lists_requests_by_deadline_with_overdue_first(
    client_for, privacy_officer, verified_request
):
    """Open requests show soonest deadline first; an overdue one is marked; unverified
    ones are not shown."""
    late = verified_request(at=datetime(2027, 1, 5, 9, 0), email="late@example.com")
    soon = verified_request(at=datetime(2027, 1, 20, 9, 0), email="soon@example.com")
    with time_machine.travel(datetime(2027, 2, 10, 9, 0), tick=False):
        body = (
            client_for(privacy_officer).get(reverse("datasubjects:request_list")).content.decode()
        )
    assert body.index(str(late.public_id)) < body.index(str(soon.public_id))
    assert body.count("badge-danger") == 1


@pytest.mark.parametrize("count", [1, 3])
def test_queue_query_count_is_flat(
    client_for, privacy_officer, verified_request, django_assert_num_queries, count
):
    """The queue costs the same number of queries for one request or three."""
    for n in range(count):
        dsr = verified_request(email=f"p{n}@example.com")
        DataSubjectRequest.objects.filter(pk=dsr.pk).update(assigned_to=privacy_officer)
    client = client_for(privacy_officer)
    with django_assert_num_queries(5):
        response = client.get(reverse("datasubjects:request_list"))
    assert response.content.decode().count(privacy_officer.email) >= count


def test_detail_officer_assigns_starts_and_completes(client_for, privacy_officer, verified_request):
    """A privacy officer assigns a request to themselves, starts and completes it;
    every step is in the ledger under the request's public id. With no data source
    registered, completing builds the package of the Art. 15 information alone and
    tells the requester."""
    dsr = verified_request()
    client = client_for(privacy_officer)
    base = _detail(dsr)
    client.post(base + "assign", {"assignee": privacy_officer.pk})
    client.post(base + "state", {"state": "in_progress"})
    response = client.post(base + "state", {"state": "completed"}, follow=True)
    assert 'data-testid="dsr-state">Completed<' in response.content.decode()
    dsr.refresh_from_db()
    assert (dsr.state, dsr.assigned_to) == ("completed", privacy_officer)
    actions = list(
        AuditEvent.objects.filter(object_id=str(dsr.public_id))
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "dsr.filed",
        "dsr.verified",
        "dsr.assigned",
        "dsr.state_changed",
        "dsr.package_built",
        "dsr.state_changed",
        "dsr.completion_notified",
    ]


def test_detail_officer_refuses_with_reason(client_for, privacy_officer, verified_request):
    """Refusing needs a reason; with one the request is refused and shows it."""
    dsr = verified_request()
    client = client_for(privacy_officer)
    empty = client.post(_detail(dsr) + "refuse", {"reason": ""}, follow=True)
    assert "reason" in empty.content.decode()
    dsr.refresh_from_db()
    assert dsr.state == "pending"
    client.post(_detail(dsr) + "refuse", {"reason": "Fifth identical request this week"})
    dsr.refresh_from_db()
    assert (dsr.state, dsr.refusal_reason) == ("refused", "Fifth identical request this week")


def test_detail_closing_as_duplicate_needs_same_person(
    client_for, privacy_officer, verified_request
):
    """A request closes as a duplicate of the same person's earlier one, not another's."""
    first = verified_request()
    second = verified_request()
    stranger = verified_request(email="someone-else@example.com")
    client = client_for(privacy_officer)
    client.post(_detail(second) + "duplicate", {"original": stranger.public_id})
    second.refresh_from_db()
    assert second.state == "pending"
    client.post(_detail(second) + "duplicate", {"original": first.public_id})
    second.refresh_from_db()
    assert (second.state, second.duplicate_of) == ("duplicate", first)


def test_completed_request_cannot_be_reopened(client_for, privacy_officer, verified_request):
    """A closed request stays closed: the wrong move is refused with a message."""
    dsr = verified_request()
    client = client_for(privacy_officer)
    client.post(_detail(dsr) + "state", {"state": "in_progress"})
    client.post(_detail(dsr) + "state", {"state": "completed"})
    response = client.post(_detail(dsr) + "state", {"state": "in_progress"}, follow=True)
    assert "cannot become in progress" in response.content.decode()


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.PORTAL_ADMIN])
def test_readers_see_detail_but_may_not_act(client_for, make_user, verified_request, role):
    """Auditors and portal admins read a request (no action forms) and get 403 on
    every action; the request is unchanged."""
    dsr = verified_request()
    client = client_for(make_user(role))
    page = client.get(_detail(dsr))
    assert page.status_code == 200
    assert "Act on it" not in page.content.decode()
    for action, data in [
        ("state", {"state": "in_progress"}),
        ("refuse", {"reason": "no"}),
        ("extend", {"months": 1, "reason": "x"}),
    ]:
        assert client.post(_detail(dsr) + action, data).status_code == 403
    dsr.refresh_from_db()
    assert dsr.state == "pending"


def test_other_roles_are_refused_the_queue(client_for, make_user):
    """A data science lead has no business with data subject requests."""
    response = client_for(make_user(Role.DATA_SCIENCE_LEAD)).get(
        reverse("datasubjects:request_list")
    )
    assert response.status_code == 403


def test_detail_extend_through_the_page(client_for, privacy_officer, verified_request):
    """The extend form moves the deadline and the page shows the new date."""
    dsr = verified_request(at=datetime(2027, 1, 31, 10, 0))
    with time_machine.travel(datetime(2027, 2, 2, 10, 0), tick=False):
        response = client_for(privacy_officer).post(
            _detail(dsr) + "extend", {"months": 1, "reason": "Many systems"}, follow=True
        )
    assert "31 March 2027" in response.content.decode()
    dsr.refresh_from_db()
    assert dsr.due_on == date(2027, 3, 31)


def test_detail_shows_each_source_task_with_its_evidence(
    client_for, privacy_officer, registered_sources, seeded_person, verified_request, monkeypatch
):
    """Starting the request from its page runs the tasks; the page lists each source
    with its state, rows found and query."""
    from worker.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    dsr = verified_request(email=seeded_person["email"])
    client = client_for(privacy_officer)
    with django_capture_on_commit_callbacks_for(client):
        client.post(_detail(dsr) + "state", {"state": "in_progress"})
    body = client.get(_detail(dsr)).content.decode()
    for slug in ("lake", "crm", "portal"):
        row = body.split(f'data-testid="task-{slug}"', 1)[1].split("</tr>", 1)[0]
        assert "Done" in row, (slug, row)
    assert "WHERE customer_id IN (C0000001)" in body


def django_capture_on_commit_callbacks_for(client):
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def test_source_registry_admin_registers_and_checks_a_source(client_for, admin_user, tmp_path):
    """A portal admin registers a CRM through the form (audited) and tests its connection."""
    import sqlite3

    path = tmp_path / "crm.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE contacts (email TEXT)")
    client = client_for(admin_user)
    response = client.post(
        reverse("datasubjects:source_new"),
        {
            "slug": "crm",
            "name": "CRM",
            "kind": "sql",
            "lookup_key": "email",
            "config": f'{{"url": "sqlite:///{path}", "tables": {{"contacts": "email"}}, '
            '"person_table": "contacts"}',
            "active": "on",
        },
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="datasubjects.source_saved", object_id="crm").exists()
    checked = client.post(reverse("datasubjects:source_check", args=["crm"]), follow=True)
    assert "CRM: contacts: 0 rows" in checked.content.decode()


def test_source_registry_bad_config_is_a_field_error(client_for, admin_user):
    """A config that is not JSON, or names no tables, comes back on the form."""
    client = client_for(admin_user)
    data = {"slug": "x", "name": "X", "kind": "sql", "lookup_key": "email"}
    not_json = client.post(reverse("datasubjects:source_new"), {**data, "config": "{nope"})
    assert not_json.status_code == 200 and "Enter a valid JSON" in not_json.content.decode()
    no_tables = client.post(
        reverse("datasubjects:source_new"), {**data, "config": '{"url": "sqlite:///x"}'}
    )
    assert "config needs" in no_tables.content.decode()


@pytest.mark.parametrize("role", [Role.PRIVACY_OFFICER, Role.AUDITOR])
def test_source_registry_only_admins_edit(client_for, make_user, role):
    """Privacy officers and auditors see the registry but may not register sources."""
    client = client_for(make_user(role))
    assert client.get(reverse("datasubjects:source_list")).status_code == 200
    assert client.get(reverse("datasubjects:source_new")).status_code == 403


def test_source_check_refused_to_auditors(client_for, auditor, registered_sources):
    """The auditor reads the registry but does not run connection tests."""
    response = client_for(auditor).post(reverse("datasubjects:source_check", args=["crm"]))
    assert response.status_code == 403

"""Incident list (filters, pagination, query count), detail with its timeline,
acknowledge and close, and the refusals for people who may not respond."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.models import RegisteredModel
from monitoring.models import Incident, IncidentEvent
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
STARTED = datetime(2026, 11, 29, 10, tzinfo=UTC)


def make_incident(n: int, **fields) -> Incident:
    model = RegisteredModel.objects.get(slug=fields.pop("model", "demand-forecasting"))
    values = {
        "fingerprint": f"fp{n:04d}",
        "title": f"Alert {n}",
        "severity": "warning",
        "started_at": STARTED,
        "model": model,
    }
    values.update(fields)
    incident = Incident.objects.create(**values)
    IncidentEvent.objects.create(incident=incident, kind="fired", actor="system:alertmanager")
    return incident


@pytest.mark.parametrize("count", [1, 3])
def test_incident_list_query_count_does_not_grow(client_for, auditor, count):
    """The list costs the same number of queries for one incident and for three."""
    for n in range(count):
        make_incident(n, owner=auditor)
    client = client_for(auditor)
    client.get("/monitoring/incidents/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/monitoring/incidents/")
    assert response.status_code == 200
    assert response.content.decode().count('/">Alert ') == count
    assert len(queries) == 5


def test_incident_list_filters_by_status_severity_and_model(client_for, auditor):
    """Filters narrow the list to matching incidents."""
    make_incident(1, severity="critical")
    make_incident(2, status="closed")
    make_incident(3, model="customer-segmentation")
    client = client_for(auditor)
    body = client.get("/monitoring/incidents/?severity=critical").content.decode()
    assert "Alert 1" in body and "Alert 2" not in body and "Alert 3" not in body
    body = client.get("/monitoring/incidents/?status=closed").content.decode()
    assert "Alert 2" in body and "Alert 1" not in body
    body = client.get("/monitoring/incidents/?model=customer-segmentation").content.decode()
    assert "Alert 3" in body and "Alert 1" not in body


def test_incident_list_paginates_by_25(client_for, auditor):
    """The 26th incident is on page two, and the filter survives the page link."""
    for n in range(26):
        make_incident(n, severity="critical")
    client = client_for(auditor)
    body = client.get("/monitoring/incidents/?severity=critical").content.decode()
    assert "Page 1 of 2" in body
    assert "severity=critical&amp;page=2" in body


def test_incident_list_refused_without_a_role(client_for, outsider):
    """Someone without a role sees no incident."""
    assert client_for(outsider).get("/monitoring/incidents/").status_code == 403


def test_incident_detail_shows_timeline(client_for, auditor):
    """The detail page shows the incident and its timeline, with no form for an auditor."""
    incident = make_incident(1, annotations={"runbook_url": "https://runbooks.example/x"})
    body = client_for(auditor).get(f"/monitoring/incidents/{incident.pk}/").content.decode()
    assert "Alert 1" in body and "Fired" in body and "https://runbooks.example/x" in body
    assert "Close incident" not in body


def test_acknowledge_takes_ownership(client_for, devops):
    """DevOps acknowledges an unowned incident: it becomes theirs, on the timeline and
    in the ledger."""
    incident = make_incident(1)
    response = client_for(devops).post(f"/monitoring/incidents/{incident.pk}/acknowledge")
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.owner) == ("acknowledged", devops)
    assert incident.timeline.last().kind == "acknowledged"
    assert AuditEvent.objects.filter(action="incident.acknowledged").exists()


def test_close_needs_a_note_and_confirmation(client_for, devops):
    """Closing without a note or without confirming is a 400 with the field errors;
    with both it closes, audited."""
    incident = make_incident(1)
    client = client_for(devops)
    response = client.post(f"/monitoring/incidents/{incident.pk}/close", {"note": ""})
    assert response.status_code == 400
    incident.refresh_from_db()
    assert incident.status == "firing"
    response = client.post(
        f"/monitoring/incidents/{incident.pk}/close", {"note": "Retrained.", "confirm": "on"}
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "closed" and incident.closed_at is not None
    assert incident.timeline.last().detail == {"note": "Retrained."}
    assert AuditEvent.objects.filter(action="incident.closed").exists()


def test_close_and_acknowledge_refused_to_auditors(client_for, auditor, make_user):
    """Auditors and privacy officers read incidents but cannot change them."""
    incident = make_incident(1)
    for user in (auditor, make_user(Role.PRIVACY_OFFICER)):
        client = client_for(user)
        assert client.post(f"/monitoring/incidents/{incident.pk}/acknowledge").status_code == 403
        response = client.post(
            f"/monitoring/incidents/{incident.pk}/close", {"note": "x", "confirm": "on"}
        )
        assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == "firing"

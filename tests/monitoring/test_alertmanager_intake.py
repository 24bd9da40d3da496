"""`POST /hooks/alertmanager`: Alertmanager's webhook (payload version 4) opens and
updates incidents; refusals record nothing but their count; duplicates change nothing."""

import copy
import json

import pytest

from governance.models import RegisteredModel
from monitoring.models import AlertDelivery, Incident, IncidentEvent
from portal.audit.models import AuditEvent
from portal.security.models import RefusalWindow

pytestmark = pytest.mark.django_db
TOKEN = "am-secret-token-for-tests"
URL = "/hooks/alertmanager"


def notification(status: str = "firing", **alert_overrides) -> dict:
    alert = {
        "status": status,
        "labels": {
            "alertname": "ModelDataDrift",
            "model": "demand-forecasting",
            "severity": "critical",
            "metric": "data_drift",
        },
        "annotations": {
            "summary": "KL divergence 0.31 above 0.2",
            "runbook_url": "https://runbooks.example/monitoring#data_drift",
        },
        "startsAt": "2026-11-29T10:00:00.000Z",
        "endsAt": "2026-11-29T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "6f2c1e0b9a8d7c65",
    }
    alert.update(alert_overrides)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ModelDataDrift"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "portal",
        "groupLabels": {"alertname": "ModelDataDrift"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


@pytest.fixture(autouse=True)
def _token(settings):
    settings.ALERTMANAGER_WEBHOOK_TOKEN = TOKEN


def post(client, body, token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", **headers)


def _nothing_recorded() -> None:
    assert not Incident.objects.exists()
    assert not AlertDelivery.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="incident.").exists()


def test_firing_alert_opens_one_incident_owned_by_the_model_owner(client, make_user):
    """A firing alert opens an incident for its model, owned by the model's owner, with
    "fired" on its timeline and an audit event."""
    owner = make_user("model_owner")
    RegisteredModel.objects.filter(slug="demand-forecasting").update(owner=owner)
    response = post(client, notification())
    assert response.status_code == 200
    assert response.json()["recorded"] == 1
    incident = Incident.objects.get()
    assert (incident.status, incident.severity, incident.owner) == ("firing", "critical", owner)
    assert incident.model.slug == "demand-forecasting"
    assert incident.title == "ModelDataDrift on demand-forecasting"
    assert incident.timeline.first().kind == "fired"
    assert AuditEvent.objects.filter(action="incident.opened", object_id=str(incident.pk)).exists()


def test_repeated_notification_is_one_incident(client):
    """Alertmanager repeats a notification: the same group, alert, start and status
    change nothing the second time."""
    post(client, notification())
    response = post(client, notification())
    assert response.json() == {"recorded": 0, "duplicates": 1, "incidents": []}
    assert Incident.objects.count() == 1
    assert IncidentEvent.objects.filter(kind="fired").count() == 1
    assert AuditEvent.objects.filter(action="incident.opened").count() == 1


def test_resolved_alert_resolves_and_refiring_reopens(client):
    """Resolved adds "resolved"; the same alert firing again (a new start) brings the
    same incident back to firing rather than opening another."""
    post(client, notification())
    post(client, notification("resolved"))
    incident = Incident.objects.get()
    assert incident.status == "resolved" and incident.resolved_at is not None
    post(client, notification(startsAt="2026-11-29T12:00:00Z"))
    incident.refresh_from_db()
    assert incident.status == "firing"
    assert list(incident.timeline.exclude(kind="action_taken").values_list("kind", flat=True)) == [
        "fired",
        "resolved",
        "fired",
    ]


def test_stale_firing_after_its_resolution_changes_nothing(client):
    """A firing of an episode (fingerprint and start) already reported resolved, late
    from another group or an Alertmanager peer, or after the resolution overtook it,
    neither reopens the resolved incident nor opens a phantom one that never resolves."""
    post(client, notification())
    post(client, notification("resolved"))
    late = notification()
    late["groupKey"] = '{}:{alertname="ModelDataDrift", model="demand-forecasting"}'
    assert post(client, late).status_code == 200
    incident = Incident.objects.get()
    assert incident.status == "resolved"
    assert list(incident.timeline.exclude(kind="action_taken").values_list("kind", flat=True)) == [
        "fired",
        "resolved",
    ]
    # The resolution arrives first, its firing after: no incident left firing.
    overtaken = notification(fingerprint="0a1b2c3d4e5f6071", startsAt="2026-11-29T13:00:00Z")
    resolved_first = notification(
        "resolved", fingerprint="0a1b2c3d4e5f6071", startsAt="2026-11-29T13:00:00Z"
    )
    post(client, resolved_first)
    post(client, overtaken)
    assert not Incident.objects.filter(fingerprint="0a1b2c3d4e5f6071").exists()


def test_alert_without_known_model_has_no_owner(client):
    """An alert naming no registered model still opens an incident, without an owner."""
    body = notification(labels={"alertname": "PortalDown", "severity": "warning"})
    post(client, body)
    incident = Incident.objects.get()
    assert (incident.model, incident.owner, incident.title) == (None, None, "PortalDown")


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_unauthenticated_notification_is_refused_and_counted(client, token):
    """No token or a wrong one: 401 in the JSON error shape, nothing recorded, the
    refusal counted by the portal's refused-request counter."""
    response = post(client, notification(), token=token)
    assert response.status_code == 401
    assert response.json()["error"] and response.json()["fields"] == {}
    _nothing_recorded()
    window = RefusalWindow.objects.get(kind="hook.alertmanager.refused")
    assert window.count == 1


def test_hook_refuses_everything_when_no_token_is_configured(client, settings):
    """An unset ALERTMANAGER_WEBHOOK_TOKEN never matches, not even an empty bearer."""
    settings.ALERTMANAGER_WEBHOOK_TOKEN = ""
    assert post(client, notification(), token="").status_code == 401
    _nothing_recorded()


def _broken(mutate) -> dict:
    body = copy.deepcopy(notification())
    mutate(body)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "body"),
        ("[]", "body"),
        (_broken(lambda b: b.update(version="3")), "version"),
        (_broken(lambda b: b.pop("groupKey")), "groupKey"),
        (_broken(lambda b: b.update(alerts=[])), "alerts"),
        (_broken(lambda b: b["alerts"][0].update(status="pending")), "alerts[0].status"),
        (_broken(lambda b: b["alerts"][0].update(startsAt="yesterday")), "alerts[0].startsAt"),
        (_broken(lambda b: b["alerts"][0].pop("fingerprint")), "alerts[0].fingerprint"),
        (
            _broken(lambda b: b["alerts"][0]["labels"].pop("alertname")),
            "alerts[0].labels.alertname",
        ),
        (_broken(lambda b: b["alerts"][0].update(labels={"a": 1})), "alerts[0].labels"),
        # Text limits: refused by field, not cut, not a database error (the title column)
        (
            _broken(lambda b: b["alerts"][0]["labels"].update(alertname="A" * 129)),
            "alerts[0].labels.alertname",
        ),
        (
            _broken(lambda b: b["alerts"][0]["annotations"].update(summary="s" * 5001)),
            "alerts[0].annotations",
        ),
        (
            _broken(lambda b: b["alerts"][0].update(generatorURL="h" * 2001)),
            "alerts[0].generatorURL",
        ),
        (_broken(lambda b: b.update(receiver="r" * 201)), "receiver"),
        # Text PostgreSQL refuses (NUL) anywhere it would be stored, and nesting deeper
        # than the parser goes: a 400 naming the place, never a database error or a 500.
        (
            _broken(lambda b: b["alerts"][0]["labels"].update(alertname="Drift\x00")),
            "alerts[0].labels.alertname",
        ),
        (
            _broken(lambda b: b["alerts"][0]["labels"].update({"team\x00": "ml"})),
            "alerts[0].labels.team\x00",
        ),
        (
            _broken(lambda b: b["alerts"][0]["annotations"].update(summary="a\x00b")),
            "alerts[0].annotations.summary",
        ),
        (_broken(lambda b: b["alerts"][0].update(fingerprint="ab\x00")), "alerts[0].fingerprint"),
        (_broken(lambda b: b.update(groupKey="g\x00")), "groupKey"),
        (_broken(lambda b: b.update(receiver="r\x00")), "receiver"),
        ("[" * 100_000 + "]" * 100_000, "body"),
    ],
)
def test_malformed_payload_is_400_with_field_errors(client, body, field):
    """A body that is no version-4 payload is a 400 naming the field; nothing recorded."""
    response = post(client, body)
    assert response.status_code == 400
    assert field in response.json()["fields"], response.json()
    _nothing_recorded()
    assert RefusalWindow.objects.get(kind="hook.alertmanager.refused").count == 1


def test_unicode_labels_are_recorded_as_sent(client):
    """Labels and annotations in any script (accents, symbols, astral characters) are
    recorded unchanged."""
    body = notification()
    body["alerts"][0]["labels"].update(alertname="Dérive ☃ \U0001d518", team="données")
    response = post(client, body)
    assert response.status_code == 200, response.json()
    incident = Incident.objects.get()
    assert incident.title == "Dérive ☃ \U0001d518 on demand-forecasting"


def test_one_bad_alert_refuses_the_whole_notification(client):
    """A notification with one good and one bad alert records neither."""
    body = notification()
    body["alerts"].append({**body["alerts"][0], "fingerprint": "", "status": "firing"})
    response = post(client, body)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["alerts[1].fingerprint"]
    _nothing_recorded()


def test_get_is_not_allowed(client):
    """Only POST reaches the hook; the refusal is the API's JSON error shape."""
    response = client.get(URL)
    assert response.status_code == 405
    assert response.json()["error"]

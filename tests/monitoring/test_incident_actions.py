"""Actions by policy, once per firing: a drift or accuracy alert starts one retraining
run of its model; a critical alert notifies the board and DevOps; neither again when
the same firing is delivered again."""

import pytest

from governance.training.models import PipelineRun
from monitoring.models import Incident, IncidentAction
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from portal.notify.models import EmailNotification
from tests.monitoring.test_alertmanager_intake import TOKEN, notification, post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _token(settings):
    settings.ALERTMANAGER_WEBHOOK_TOKEN = TOKEN


def test_drift_alert_starts_one_retraining_run(client):
    """A data drift alert starts a retraining run of its model, triggered by the alert,
    visible on the incident; the same firing delivered again (another group) starts
    none."""
    post(client, notification())
    body = notification()
    body["groupKey"] = "another-route"
    post(client, body)
    run = PipelineRun.objects.get()
    assert (run.model.slug, run.trigger) == ("demand-forecasting", "alert")
    incident = Incident.objects.get()
    assert f"Incident #{incident.pk}" in run.reason
    retrain = IncidentAction.objects.get(kind="retrain")
    assert (retrain.outcome, retrain.run_id) == ("taken", run.pk)
    assert AuditEvent.objects.filter(action="incident.action_taken").count() == 2
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds == ["fired", "action_taken", "action_taken", "fired"]


def test_refiring_with_a_run_active_is_recorded_not_taken(client):
    """A new firing while the first run is still queued takes no second run; the
    incident says why."""
    post(client, notification())
    post(client, notification(startsAt="2026-11-29T12:00:00Z"))
    assert PipelineRun.objects.count() == 1
    second = IncidentAction.objects.filter(kind="retrain").order_by("pk").last()
    assert second.outcome == "not_taken"
    assert "already queued or running" in second.reason


def test_critical_alert_notifies_board_and_devops_once(client, make_user):
    """Board members and DevOps get one e-mail per critical firing; auditors none."""
    lead, devops, auditor = (
        make_user(Role.DATA_SCIENCE_LEAD),
        make_user(Role.DEVOPS),
        make_user(Role.AUDITOR),
    )
    post(client, notification())
    post(client, notification())
    mailed = set(EmailNotification.objects.values_list("recipient_id", flat=True))
    assert mailed == {lead.pk, devops.pk}
    assert EmailNotification.objects.count() == 2
    assert auditor.pk not in mailed


def test_latency_warning_takes_no_action(client):
    """A latency warning is for the serving side: no run, no notification."""
    labels = {"alertname": "ModelLatency", "model": "demand-forecasting", "metric": "latency_p95"}
    post(client, notification(labels={**labels, "severity": "warning"}))
    assert not IncidentAction.objects.exists()
    assert not PipelineRun.objects.exists()


def test_incident_page_links_the_run(client, client_for, devops):
    """The incident page shows the retraining run the alert started, linked."""
    post(client, notification())
    incident, run = Incident.objects.get(), PipelineRun.objects.get()
    body = client_for(devops).get(f"/monitoring/incidents/{incident.pk}/").content.decode()
    assert f'href="/pipelines/runs/{run.pk}/"' in body

"""The training runs API: starting a run (201, 409 while one is active, 400 field
errors), reading it, and the refusals (no token, wrong scope, wrong role)."""

import pytest
from django.urls import reverse

from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/pipelines/runs"


def test_start_run_with_a_token_returns_201_and_the_run(bearer, pipelines_settings):
    client, token = bearer("pipelines:write")
    response = client.post(
        URL,
        {"model": "customer-segmentation", "reason": "drift alert", "params": {"n_init": 2}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    run = PipelineRun.objects.get()
    assert body["id"] == run.pk and body["model"] == "customer-segmentation"
    assert body["state"] == RunState.QUEUED and body["trigger"] == RunTrigger.API
    assert body["planned_version"] == "1.0.0" and body["params"] == {"n_init": 2}
    assert body["version"] is None and body["steps"] == []
    assert response["Location"] == body["url"] == f"{URL}/{run.pk}"
    event = AuditEvent.objects.get(action="pipeline_run.started")
    assert event.actor_type == "token" and event.actor_id == token.prefix


def test_start_run_while_one_is_active_is_409(bearer, pipelines_settings):
    client, _ = bearer("pipelines:write")
    first = client.post(
        URL, {"model": "demand-forecasting", "reason": "a"}, content_type="application/json"
    ).json()
    response = client.post(
        URL, {"model": "demand-forecasting", "reason": "b"}, content_type="application/json"
    )
    assert response.status_code == 409
    body = response.json()
    assert "already queued or running" in body["error"]
    assert body["active_run"] == first["id"] and body["active_run_url"] == first["url"]
    assert PipelineRun.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"reason": "x"}, "model", "This field is required."),
        ({"model": "demand-forecasting"}, "reason", "This field is required."),
        ({"model": "fraud-detection", "reason": "x"}, "model", "No model 'fraud-detection'"),
        ({"model": "demand-forecasting", "reason": "x", "params": {"k": 3}}, "params", "unknown"),
    ],
)
def test_start_run_field_errors_are_400(bearer, pipelines_settings, payload, field, message):
    client, _ = bearer("pipelines:write")
    response = client.post(URL, payload, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid input." and message in " ".join(body["fields"][field])
    assert not PipelineRun.objects.exists()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ('{"learning_rate": 1e999}', "params.learning_rate"),
        ('{"num_leaves": 1' + "0" * 399 + "}", "params.num_leaves"),
        ('{"note": "a\\u0000b"}', "params.note"),
    ],
)
def test_start_run_unstorable_params_are_400_naming_the_path(
    bearer, pipelines_settings, params, field
):
    """Infinity, integers beyond a float's range and NUL in run parameters are refused
    where they sit, before any check could overflow or the database refuse them."""
    client, _ = bearer("pipelines:write")
    body = f'{{"model": "demand-forecasting", "reason": "x", "params": {params}}}'
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == [field]
    assert not PipelineRun.objects.exists()


def test_start_run_refused_without_the_scope_or_a_token(bearer, client, pipelines_settings):
    payload = {"model": "demand-forecasting", "reason": "x"}
    assert client.post(URL, payload, content_type="application/json").status_code in (401, 403)
    wrong, _ = bearer("registry:write", "pipelines:read")
    response = wrong.post(URL, payload, content_type="application/json")
    assert response.status_code == 403
    assert "pipelines:write" in response.json()["error"]
    assert not PipelineRun.objects.exists()


def test_start_run_with_a_session_needs_a_starting_role(client_for, make_user, pipelines_settings):
    payload = {"model": "demand-forecasting", "reason": "x"}
    assert (
        client_for(make_user(Role.AUDITOR))
        .post(URL, payload, content_type="application/json")
        .status_code
        == 403
    )
    lead = client_for(make_user(Role.DATA_SCIENCE_LEAD))
    assert lead.post(URL, payload, content_type="application/json").status_code == 201


def test_read_a_run_with_its_steps_and_outcome(bearer, train):
    run = train("demand-forecasting")
    client, _ = bearer("pipelines:read")
    response = client.get(f"{URL}/{run.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "succeeded" and body["version"] == run.version.version
    assert [s["name"] for s in body["steps"]][:2] == ["snapshot", "validate"]
    assert all(s["state"] == "succeeded" for s in body["steps"])
    assert body["comparison"]["metric"] == "mape"
    assert body["page_url"] == reverse("governance:run_detail", kwargs={"pk": run.pk})


def test_read_a_run_refusals_and_404(bearer, pipelines_settings):
    client, _ = bearer("pipelines:write")
    assert client.get(f"{URL}/999").status_code == 403
    client, _ = bearer("pipelines:read")
    response = client.get(f"{URL}/999")
    assert response.status_code == 404 and response.json()["error"]

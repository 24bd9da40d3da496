"""Liveness, readiness and metrics endpoints."""

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ready_when_database_and_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": {"ok": True}, "broker": {"ok": True}}


@pytest.mark.postgres
def test_readyz_answers_503_when_the_database_is_away(client, monkeypatch):
    connection = connections["default"]
    connection.close()
    # Nothing listens on port 1: the database is unreachable for this request.
    monkeypatch.setitem(connection.settings_dict, "PORT", "1")
    response = client.get("/readyz")
    monkeypatch.undo()
    connection.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["broker"]["ok"] is True


def test_readyz_answers_503_when_the_broker_is_away(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_metrics_are_in_prometheus_format(client):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in text


def test_metrics_with_a_token_set_refuse_requests_without_it(client, settings):
    """With METRICS_BEARER_TOKEN set, /metrics (model quality and drift figures) is a
    401 to anonymous callers and to a wrong token, and the page to the right one."""
    settings.METRICS_BEARER_TOKEN = "scrape-secret"
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "django_http" not in refused.content.decode()
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guessed")
    assert wrong.status_code == 401
    basic = client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-secret")
    assert basic.status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert allowed.status_code == 200
    assert "# TYPE django_http_requests_total_by_method_total counter" in allowed.content.decode()

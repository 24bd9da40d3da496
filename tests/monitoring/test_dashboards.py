"""A model's dashboard from Prometheus: the mock-up's panels, a time range picker, a
fixed budget of queries with a cache, and a clear message (with the stored drift
records still shown) when Prometheus is down."""

from datetime import UTC, datetime

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.dashboards import MAX_QUERIES_PER_PAGE
from monitoring.models import DriftResult

pytestmark = pytest.mark.django_db


def _closed_port_url() -> str:
    from tests.monitoring.conftest import _free_port

    return f"http://127.0.0.1:{_free_port()}"


def test_dashboard_when_prometheus_is_down_says_so_and_shows_records(
    client_for, auditor, settings, register
):
    """Prometheus unreachable: the page still answers, names the problem and how to
    install it, and lists the drift records the portal holds."""
    settings.PROMETHEUS_URL = _closed_port_url()
    version = register("1.0.0")
    DriftResult.objects.create(
        version=version, feature="price", method="psi", value=0.31, threshold=0.1,
        verdict="drift", reference_count=2000, current_count=1500,
        window_start=datetime(2026, 11, 1, tzinfo=UTC),
        window_end=datetime(2026, 11, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    response = client_for(auditor).get("/monitoring/demand-forecasting/?range=7d")
    body = response.content.decode()
    assert response.status_code == 200
    assert "cannot be reached" in body and "apt-get install prometheus" in body
    assert ">0.31<" in body and "Drift" in body  # the drift score, as readable numbers show it
    for panel in ("accuracy", "latency", "drift", "anomaly"):
        assert f'data-testid="panel-{panel}"' in body
    assert '<option value="7d" selected>' in body


@pytest.mark.prometheus
def test_dashboard_queries_stay_within_budget_and_are_cached(
    client_for, auditor, settings, prometheus_server
):
    """Against a real Prometheus: one view asks at most the budget of query_range
    calls (one per catalogue metric), a second view within the cache time asks none."""
    settings.PROMETHEUS_URL = prometheus_server
    client = client_for(auditor)

    def range_queries() -> float:
        # Prometheus's own request counter, read live from its /metrics (not through a
        # query, which would wait for the next scrape).
        text = requests.get(f"{prometheus_server}/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "prometheus_http_requests_total"
            and sample.labels.get("handler") == "/api/v1/query_range"
        )

    before = range_queries()
    response = client.get("/monitoring/demand-forecasting/?range=30d")
    assert response.status_code == 200
    assert "cannot be reached" not in response.content.decode()
    after_first = range_queries()
    assert after_first - before == 6 <= MAX_QUERIES_PER_PAGE
    client.get("/monitoring/demand-forecasting/?range=30d")
    assert range_queries() == after_first

"""The monitoring pages on the portal's own records: the fleet's worst status, the
canary-against-stable view, the stored quality records (there when Prometheus is
not), links to Grafana, and the by-track queries the charts send."""

from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.models import RegisteredModel, TargetAssignment
from monitoring.catalogue import CATALOGUE
from monitoring.models import DriftResult, Incident, MetricThreshold, QualityResult
from tests.monitoring.conftest import _free_port

pytestmark = pytest.mark.django_db


def _quality(version, metric, value, *, track="stable", minutes_ago=5):
    end = timezone.now() - timedelta(minutes=minutes_ago)
    return QualityResult.objects.create(
        version=version, track=track, metric=metric, value=value, sample_count=120,
        window_start=end - timedelta(hours=1), window_end=end,
    )  # fmt: skip


def _incident(model_slug, severity, n=0):
    return Incident.objects.create(
        fingerprint=f"fp{n}{model_slug}"[:64], severity=severity, title=f"alert {n}",
        model=RegisteredModel.objects.get(slug=model_slug), started_at=timezone.now(),
    )  # fmt: skip


def _fleet_row(body, slug):
    start = body.index(f'data-testid="fleet-{slug}"')
    return body[start : body.index("</tr>", start)]


def test_overview_shows_each_models_worst_status(client_for, auditor, register):
    """Forecasting's stored MAPE beyond its critical threshold makes it critical (and
    says why); segmentation with an open warning incident is a warning; recommendation
    with no figures says it has no data; an old window no longer counts."""
    forecast = register("1.0.0")
    _quality(forecast, "mape", 0.31)
    _quality(forecast, "mae", 10.0)
    _quality(forecast, "mae", 900.0, minutes_ago=60 * 24)  # long gone
    _incident("customer-segmentation", "warning")
    body = client_for(auditor).get("/monitoring/").content.decode()
    forecasting = _fleet_row(body, "demand-forecasting")
    assert 'data-status="critical"' in forecasting and "MAPE 0.31 on stable" in forecasting
    assert "MAE" not in forecasting
    segmentation = _fleet_row(body, "customer-segmentation")
    assert 'data-status="warning"' in segmentation and "1 open incident" in segmentation
    recommendation = _fleet_row(body, "product-recommendation")
    assert 'data-status="unknown"' in recommendation and "No quality or drift" in recommendation


SLUGS = ("demand-forecasting", "customer-segmentation", "product-recommendation")


@pytest.mark.parametrize("models", [1, 3])
def test_overview_query_count_does_not_grow_with_models_versions_or_records(
    client_for, auditor, register, models
):
    """The fleet page takes six queries (three for the session, its user and roles;
    one for the models with their serving and latest versions and open incidents, one
    for thresholds, one for quality and drift figures together) whether one model or
    three has versions serving production and canary, thresholds of its own, stored
    figures on both tracks and open incidents of each severity."""
    for slug in SLUGS[:models]:
        versions = [register(f"1.{minor}.0", model=slug) for minor in range(4)]
        model = versions[0].model
        TargetAssignment.objects.create(model=model, target="production", version=versions[0])
        TargetAssignment.objects.create(model=model, target="canary", version=versions[1])
        entry = CATALOGUE[model.kind][0]
        MetricThreshold.objects.create(
            model=model, metric=entry.key, warning=entry.warning, critical=entry.critical
        )
        for n, (version, track) in enumerate(((versions[0], "stable"), (versions[1], "canary"))):
            _quality(version, "mae", 10.0 + n, track=track)
            DriftResult.objects.create(
                version=version, track=track, feature="basket_value", method="psi", value=0.05,
                threshold=0.2, verdict="ok", reference_count=2000, current_count=300,
                window_start=timezone.now() - timedelta(hours=1), window_end=timezone.now(),
            )  # fmt: skip
        for n, severity in enumerate(("critical", "warning", "info")):
            _incident(slug, severity, n)
    client = client_for(auditor)
    client.get("/monitoring/")
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/monitoring/").content.decode()
    assert len(queries) == 6, [q["sql"][:80] for q in queries.captured_queries]
    for slug in SLUGS[:models]:
        row = _fleet_row(body, slug)
        assert "<td>1.0.0</td>" in row and "<td>1.1.0</td>" in row and "<td>1.3.0</td>" in row
        assert "3 open incident(s)" in row and 'data-status="critical"' in row


def test_model_page_compares_canary_with_stable(client_for, auditor, register, settings):
    """The canary's stored MAE above the warning threshold shows beside the stable
    version's healthy one, each with its version and status; the drift row takes the
    worst input feature of the track."""
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{_free_port()}"
    stable, canary = register("1.0.0"), register("1.1.0")
    _quality(stable, "mae", 100.0)
    _quality(canary, "mae", 450.0, track="canary")
    end = timezone.now()
    for feature, value in (("level_28", 0.05), ("discount", 0.35)):
        DriftResult.objects.create(
            version=canary, track="canary", feature=feature, method="kl", value=value,
            threshold=0.1, verdict="drift", reference_count=2000, current_count=300,
            window_start=end - timedelta(hours=1), window_end=end,
        )  # fmt: skip
    body = client_for(auditor).get("/monitoring/demand-forecasting/").content.decode()
    table = body[body.index('data-testid="tracks"') : body.index('data-testid="quality-records"')]
    mae = table[table.index("<td>MAE") : table.index("</tr>", table.index("<td>MAE"))]
    assert "<td>100 <small" in mae and "1.0.0" in mae and 'data-status="ok"' in mae
    assert "<td>450 <small" in mae and "1.1.0" in mae and 'data-status="warning"' in mae
    drift = table[table.index("Data drift") : table.index("</tr>", table.index("Data drift"))]
    assert "0.35 <small" in drift and 'data-status="critical"' in drift


def test_model_page_without_prometheus_shows_quality_records(
    client_for, auditor, register, settings
):
    """Prometheus down: the page says so and lists the stored quality figures, a
    not-enough-data window as such."""
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{_free_port()}"
    version = register("1.0.0")
    _quality(version, "rmse", 12.5)
    _quality(version, "mape", None, minutes_ago=70)
    body = client_for(auditor).get("/monitoring/demand-forecasting/").content.decode()
    assert 'data-testid="prometheus-down"' in body
    records = body[body.index('data-testid="quality-records"') :]
    assert "rmse" in records and "<td>12.5</td>" in records and "not enough data" in records


def test_grafana_links_only_when_configured(client_for, auditor, settings):
    """With GRAFANA_URL the pages link the generated dashboard over the chosen range;
    without it, no link."""
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{_free_port()}"
    client = client_for(auditor)
    assert "Grafana" not in client.get("/monitoring/demand-forecasting/").content.decode()
    settings.GRAFANA_URL = "https://grafana.example"
    body = client.get("/monitoring/demand-forecasting/?range=7d").content.decode()
    assert (
        'href="https://grafana.example/d/portal-models/models-in-production?from=now-7d&amp;to=now"'
        in body
    )
    assert "https://grafana.example/d/portal-models/" in client.get("/monitoring/").content.decode()


def test_model_page_refuses_people_without_a_role(client_for, outsider):
    """The dashboard with its stored figures is not for someone without a role."""
    assert client_for(outsider).get("/monitoring/demand-forecasting/").status_code == 403


@pytest.mark.prometheus
def test_by_track_queries_are_valid_promql(prometheus_server):
    """Every catalogue query kept apart by track is accepted by a real Prometheus."""
    for entries in CATALOGUE.values():
        for entry in entries:
            query = entry.query_by_track(model="demand-forecasting")
            answer = requests.get(
                f"{prometheus_server}/api/v1/query", params={"query": query}, timeout=5
            ).json()
            assert answer["status"] == "success", (query, answer)

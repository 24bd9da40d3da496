"""The metric catalogue per model kind and per-model thresholds: who may change them,
what is refused, and the audit trail of each change."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.models import RegisteredModel
from monitoring.catalogue import CATALOGUE, catalogue_entry
from monitoring.models import MetricThreshold
from monitoring.selectors import thresholds_for
from monitoring.services import threshold_set
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _model(slug: str = "demand-forecasting") -> RegisteredModel:
    return RegisteredModel.objects.get(slug=slug)


def test_catalogue_covers_the_client_metrics_per_kind():
    """Each kind carries the metrics the client's document names, every one with a
    query, a unit and thresholds on the right side of each other."""
    keys = {kind: [e.key for e in entries] for kind, entries in CATALOGUE.items()}
    assert keys == {
        "forecasting": ["mae", "mape", "rmse", "data_drift", "latency_p95", "throughput"],
        "segmentation": ["silhouette", "cluster_distribution", "feature_drift", "latency_p95"],
        "recommendation": [
            "hit_rate",
            "click_through_rate",
            "revenue_uplift",
            "latency_p95",
            "error_rate",
        ],
    }
    for entries in CATALOGUE.values():
        for entry in entries:
            assert 'model="m"' in entry.query(model="m")
            if entry.lower_is_better:
                assert entry.critical > entry.warning, entry.key
            else:
                assert entry.critical < entry.warning, entry.key


def test_thresholds_for_defaults_then_own_values():
    """A model starts on the catalogue's defaults; a value set for it replaces them for
    that model only."""
    forecasting = _model()
    mape = {t.entry.key: t for t in thresholds_for(model=forecasting)}["mape"]
    assert (mape.warning, mape.critical, mape.overridden) == (0.15, 0.20, False)
    MetricThreshold.objects.create(model=forecasting, metric="mape", warning=0.1, critical=0.3)
    mape = {t.entry.key: t for t in thresholds_for(model=forecasting)}["mape"]
    assert (mape.warning, mape.critical, mape.overridden) == (0.1, 0.3, True)
    assert mape.query == ('max(portal_model_quality{model="demand-forecasting",metric="mape"})')


def test_threshold_set_stores_and_audits(make_user):
    """A change is stored and audited with the values before (the defaults) and after;
    the same values again record nothing more."""
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    forecasting = _model()
    threshold_set(
        model=forecasting,
        metric="mape",
        warning=0.1,
        critical=0.25,
        user=lead,
        actor=lead.audit_actor(),
    )
    stored = MetricThreshold.objects.get(model=forecasting, metric="mape")
    assert (stored.warning, stored.critical, stored.updated_by) == (0.1, 0.25, lead)
    event = AuditEvent.objects.get(action="monitoring.threshold_set")
    assert event.object_id == "demand-forecasting"
    assert event.payload_record.data == {
        "metric": "mape",
        "from": {"warning": 0.15, "critical": 0.2},
        "to": {"warning": 0.1, "critical": 0.25},
    }
    threshold_set(
        model=forecasting,
        metric="mape",
        warning=0.1,
        critical=0.25,
        user=lead,
        actor=lead.audit_actor(),
    )
    assert AuditEvent.objects.filter(action="monitoring.threshold_set").count() == 1


@pytest.mark.parametrize(
    ("metric", "warning", "critical", "field"),
    [
        ("silhouette", 0.3, 0.2, "metric"),  # not a forecasting metric
        ("mape", 0.3, 0.2, "critical"),  # lower is better: critical must be above
        ("throughput", 0.1, 1.0, "critical"),  # higher is better: critical must be below
        ("mape", 1.5, 2.0, "warning"),  # a share above 1
        ("latency_p95", -1.0, 0.5, "warning"),  # negative seconds
        ("mae", float("nan"), 500, "warning"),
        ("mae", "400", 500, "warning"),
    ],
)
def test_threshold_set_refuses_bad_values(make_user, metric, warning, critical, field):
    """Bad thresholds are refused with the field at fault; nothing stored or audited."""
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    with pytest.raises(ValidationError) as refused:
        threshold_set(
            model=_model(),
            metric=metric,
            warning=warning,
            critical=critical,
            user=lead,
            actor=lead.audit_actor(),
        )
    assert field in refused.value.message_dict
    assert not MetricThreshold.objects.exists()
    assert not AuditEvent.objects.filter(action="monitoring.threshold_set").exists()


def test_overview_lists_the_three_models(client_for, auditor):
    """The page no longer says no model is registered when the three are."""
    response = client_for(auditor).get("/monitoring/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "No model is registered" not in body
    for model in RegisteredModel.objects.all():
        assert f'href="/monitoring/{model.slug}/"' in body


def test_overview_refuses_people_without_a_role(client_for, outsider):
    """Someone signed in without a role sees no model."""
    assert client_for(outsider).get("/monitoring/").status_code == 403


@pytest.mark.parametrize("count", [1, 3])
def test_overview_query_count_independent_of_models(client_for, auditor, count, register):
    """The fleet page makes the same number of queries whatever the versions."""
    for i in range(count):
        register(f"1.{i}.0")
    client = client_for(auditor)
    client.get("/monitoring/")
    with CaptureQueriesContext(connection) as queries:
        client.get("/monitoring/")
    assert len(queries) == 6  # session, user, roles; models, thresholds, stored figures


def test_model_page_shows_thresholds_read_only_to_auditors(client_for, auditor):
    """An auditor reads the metrics, their queries and thresholds, with no form."""
    response = client_for(auditor).get("/monitoring/customer-segmentation/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Silhouette score" in body and "Feature drift (normed Wasserstein)" in body
    assert "portal_model_drift" in body
    assert 'name="warning"' not in body


def test_threshold_edit_by_devops_saves(client_for, devops):
    """DevOps changes a threshold from the page; it is stored and the page shows it."""
    client = client_for(devops)
    response = client.post(
        "/monitoring/product-recommendation/thresholds/error_rate",
        {"warning": "0.02", "critical": "0.1"},
    )
    assert response.status_code == 302
    stored = MetricThreshold.objects.get(model__slug="product-recommendation", metric="error_rate")
    assert (stored.warning, stored.critical) == (0.02, 0.1)
    page = client.get("/monitoring/product-recommendation/").content.decode()
    assert "set for this model" in page


def test_threshold_edit_bad_value_shows_field_error(client_for, devops):
    """A critical threshold on the good side of the warning is a 400 naming the field."""
    response = client_for(devops).post(
        "/monitoring/demand-forecasting/thresholds/mape", {"warning": "0.2", "critical": "0.1"}
    )
    assert response.status_code == 400
    assert "critical must be above warning" in response.content.decode()
    assert not MetricThreshold.objects.exists()


def test_threshold_edit_refused_to_auditors_and_owners(client_for, auditor, make_user):
    """Only data science leads and DevOps change thresholds."""
    for user in (auditor, make_user(Role.MODEL_OWNER)):
        response = client_for(user).post(
            "/monitoring/demand-forecasting/thresholds/mape", {"warning": "0.1", "critical": "0.2"}
        )
        assert response.status_code == 403
    assert not MetricThreshold.objects.exists()


def test_catalogue_entry_unknown_kind_is_none():
    """An unknown kind or key has no entry rather than an error."""
    assert catalogue_entry(kind="nope", key="mae") is None
    assert catalogue_entry(kind="forecasting", key="nope") is None

"""Alert rules and the Grafana dashboard are generated from the catalogue and each
model's thresholds; the files under deploy/ must be what the generator gives, and
Prometheus's own checker must accept the rules."""

import io
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.models import RegisteredModel
from governance.selectors.registry import model_get
from monitoring.catalogue import CATALOGUE
from monitoring.models import MetricThreshold
from monitoring.rules import (
    DASHBOARD_PATH,
    RULES_PATH,
    alert_rules_yaml,
    grafana_dashboard,
    grafana_dashboard_json,
)
from monitoring.selectors import monitored_models
from tests.factories import RegisteredModelFactory

pytestmark = pytest.mark.django_db
ROOT = Path(settings.BASE_DIR)


def _models():
    return monitored_models()


def test_committed_rules_and_dashboard_match_the_catalogue():
    """deploy/ holds exactly what `manage.py monitoring_export` writes from the
    catalogue's defaults: change the catalogue, re-run the command."""
    assert (ROOT / RULES_PATH).read_text() == alert_rules_yaml(models=_models())
    assert (ROOT / DASHBOARD_PATH).read_text() == grafana_dashboard_json(models=_models())


def test_rules_cover_every_metric_at_both_severities():
    """Each model's catalogue metric has a warning and a critical alert with `for`,
    `keep_firing_for`, a severity label and a runbook link to the metric."""
    rules = yaml.safe_load((ROOT / RULES_PATH).read_text())["groups"][0]["rules"]
    expected = sum(len(entries) for entries in CATALOGUE.values()) * 2
    assert len(rules) == expected
    mape = [r for r in rules if r["labels"]["metric"] == "mape"]
    assert [(r["labels"]["severity"], r["expr"].rsplit(" ", 2)[1:]) for r in mape] == [
        ("warning", [">", "0.15"]),
        ("critical", [">", "0.2"]),
    ]
    for rule in rules:
        assert rule["for"] and rule["keep_firing_for"] == "10m"
        assert rule["annotations"]["runbook_url"].endswith(
            f"/{rule['labels']['model']}/#{rule['labels']['metric']}"
        )


def test_model_thresholds_change_the_generated_rules(tmp_path):
    """A threshold set for a model is the one its generated rule fires at."""
    MetricThreshold.objects.create(
        model=model_get(slug="demand-forecasting"), metric="mape", warning=0.12, critical=0.3
    )
    call_command("monitoring_export", root=str(tmp_path), stdout=io.StringIO())
    rules = yaml.safe_load((tmp_path / RULES_PATH).read_text())["groups"][0]["rules"]
    exprs = [r["expr"] for r in rules if r["labels"]["metric"] == "mape"]
    assert exprs[0].endswith("> 0.12") and exprs[1].endswith("> 0.3")


def test_monitored_models_reads_thresholds_in_one_query_for_every_model(
    django_assert_max_num_queries,
):
    """Each model gets its own thresholds, and adding models adds no query."""
    MetricThreshold.objects.create(
        model=model_get(slug="demand-forecasting"), metric="mape", warning=0.12, critical=0.3
    )
    with CaptureQueriesContext(connection) as few:
        monitored_models()
    for _ in range(4):
        RegisteredModelFactory()
    with django_assert_max_num_queries(len(few)):
        found = dict(monitored_models())
    assert len(found) == RegisteredModel.objects.count()
    mape = {
        model.slug: next(t for t in rows if t.entry.key == "mape")
        for model, rows in found.items()
        if any(t.entry.key == "mape" for t in rows)
    }
    assert mape["demand-forecasting"].warning == 0.12
    assert mape["demand-forecasting"].overridden
    assert not any(row.overridden for slug, row in mape.items() if slug != "demand-forecasting")


def test_dashboard_follows_the_mockup_layout():
    """Per model: accuracy and latency on the top row, drift and anomaly rate below,
    with threshold lines where a panel holds one metric."""
    panels = grafana_dashboard(models=_models())["panels"]
    rows = [p for p in panels if p["type"] == "row"]
    assert [r["title"] for r in rows] == [
        "Customer segmentation",
        "Demand forecasting",
        "Product recommendation",
    ]
    first = panels[1:5]
    assert [(p["title"], p["gridPos"]["x"], p["gridPos"]["y"]) for p in first] == [
        ("Model accuracy", 0, 1),
        ("Inference latency", 12, 1),
        ("Data drift", 0, 9),
        ("Anomaly rate", 12, 9),
    ]
    drift = first[2]
    steps = drift["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.1, 0.2]
    json.dumps(panels)


@pytest.mark.prometheus
def test_promtool_accepts_the_rules(tmp_path):
    """`promtool check rules` accepts the committed file and one with a model's own
    thresholds."""
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ROOT / RULES_PATH)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 30 rules found" in checked.stdout
    MetricThreshold.objects.create(
        model=model_get(slug="demand-forecasting"), metric="mae", warning=1e6, critical=2.5e6
    )
    call_command("monitoring_export", root=str(tmp_path), stdout=io.StringIO())
    checked = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / RULES_PATH)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

"""`manage.py demo_registry`: realistic versions per model, one in production and one
in canary each, complete and incomplete cards; a second run changes nothing."""

import pytest
from django.core.management import call_command

from governance.models import ModelVersion, TargetAssignment
from governance.selectors.cards import card_missing_sections
from governance.selectors.fairness import fairness_assessment_rows
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_demo_registry_loads_consistent_data_and_is_idempotent():
    call_command("demo_registry")
    assert ModelVersion.objects.count() == 13
    targets = {
        (a.model.slug, a.target): a.version.version
        for a in TargetAssignment.objects.select_related("model", "version")
    }
    assert targets == {
        ("demand-forecasting", "production"): "2.0.0",
        ("demand-forecasting", "canary"): "2.1.0",
        ("customer-segmentation", "production"): "1.2.0",
        ("customer-segmentation", "canary"): "1.3.0",
        ("product-recommendation", "production"): "2.1.0",
        ("product-recommendation", "canary"): "2.2.0",
    }
    production = ModelVersion.objects.get(model__slug="demand-forecasting", version="2.0.0")
    assert card_missing_sections(card=production.card) == []
    canary = ModelVersion.objects.get(model__slug="demand-forecasting", version="2.1.0")
    assert "limitations" in card_missing_sections(card=canary.card)
    assert canary.metrics["mae"] < production.metrics["mae"]
    assert canary.metrics["rmse"] > canary.metrics["mae"]
    segmentation = ModelVersion.objects.get(model__slug="customer-segmentation", version="1.2.0")
    assert segmentation.metrics["n_clusters"] == len(segmentation.metrics["cluster_sizes"])
    assert 0 < segmentation.metrics["silhouette"] < 1
    recommendation = ModelVersion.objects.get(model__slug="product-recommendation", version="2.1.0")
    assert 0 < recommendation.metrics["hit_rate_at_10"] < recommendation.metrics["coverage"] < 1
    retired = ModelVersion.objects.get(model__slug="demand-forecasting", version="1.0.0")
    assert retired.state == "retired"

    # Each card's fairness rows state what its version's slices hold, nothing invented.
    for first in ModelVersion.objects.filter(version="1.0.0").select_related("model"):
        rows = first.card.sections.get(key="fairness_assessment").data["assessments"]
        assert rows == fairness_assessment_rows(version=first, assessed_by="Data science lead")
        assert rows and all(row["result"].startswith("measured on the held-out") for row in rows)

    events = AuditEvent.objects.count()
    call_command("demo_registry")
    assert ModelVersion.objects.count() == 13
    assert AuditEvent.objects.count() == events

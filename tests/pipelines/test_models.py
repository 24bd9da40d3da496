"""Each model's pipeline on small sample data: metrics computed and sane, baseline
beaten, artifact stored and reloadable, lineage and card facts filled."""

import re

import pytest
from django.core.exceptions import ValidationError

from governance.cards_schema import section_data_clean
from governance.models import RegisteredModel
from governance.services.registry import registration_clean
from pipelines.artifacts import load_artifact, local_path
from pipelines.compare import evaluate_artifact
from pipelines.kinds.forecasting import DemandForecaster
from pipelines.kinds.recommendation import ItemRecommender
from pipelines.kinds.segmentation import CustomerSegmenter
from pipelines.sample_data import CATEGORIES, REGIONS

KINDS = ("forecasting", "segmentation", "recommendation")


def test_forecasting_beats_seasonal_naive_with_sane_metrics(sample_lake):
    result = sample_lake.results["forecasting"]
    m = result.metrics
    errors = {"mae", "rmse", "mape", "wape"}
    assert set(m) == errors | {f"baseline_{name}" for name in errors}
    assert 0 < m["mae"] <= m["rmse"]
    assert 0 < m["mape"] < m["baseline_mape"]
    assert m["mae"] < m["baseline_mae"]
    categories = result.metric_slices["category"]
    assert set(categories) == {c.name for c in CATEGORIES}
    assert all(row["mape"] >= 0 and row["baseline_mape"] >= 0 for row in categories.values())
    assert sorted(result.metric_slices["horizon_week"], key=int) == [str(w) for w in range(1, 9)]
    assert result.hyperparameters["horizon_days"] == 56
    assert result.evaluation_settings == {"holdout_weeks": 8}


def test_segmentation_segments_customers_with_sane_metrics(sample_lake):
    result = sample_lake.results["segmentation"]
    m = result.metrics
    assert 0 < m["silhouette"] <= 1
    assert 4 <= m["n_segments"] <= 7 and m["n_segments"] == result.hyperparameters["n_clusters"]
    assert m["smallest_segment_share"] >= 0.02
    segments = result.metric_slices["segment"]
    assert len(segments) == m["n_segments"]
    assert sum(row["share"] for row in segments.values()) == pytest.approx(1.0)
    spend = [segments[str(s)]["monetary"] for s in range(len(segments))]
    assert spend == sorted(spend, reverse=True)  # segment 0 spends most
    assert set(result.metric_slices["region"]) == set(REGIONS)
    assert "| segment | customers |" in result.card_facts.text["performance"]


def test_recommendation_beats_popularity_with_sane_metrics(sample_lake):
    result = sample_lake.results["recommendation"]
    m = result.metrics
    assert m["hit_rate_at_k"] > m["baseline_hit_rate_at_k"] > 0
    assert m["recall_at_k"] > m["baseline_recall_at_k"]
    assert 0 < m["precision_at_k"] <= m["hit_rate_at_k"] <= 1
    assert m["baseline_catalogue_coverage"] < m["catalogue_coverage"] <= 1
    assert set(result.metric_slices) == {"region", "activity", "category"}
    assert set(result.metric_slices["region"]) <= set(REGIONS)
    assert set(result.metric_slices["activity"]) <= {"light", "medium", "heavy"}
    assert result.evaluation_settings == {"k": 10, "holdout_weeks": 4}


@pytest.mark.parametrize(
    ("kind", "model_type"),
    [
        ("forecasting", DemandForecaster),
        ("segmentation", CustomerSegmenter),
        ("recommendation", ItemRecommender),
    ],
)
def test_artifact_is_stored_reloadable_and_reproduces_metrics(sample_lake, kind, model_type):
    result = sample_lake.results[kind]
    assert result.artifact_uri.startswith("file://") and result.artifact_uri.endswith(
        f"/{kind}/{kind}-base/"
    )
    assert (local_path(result.artifact_uri) / "model.joblib").exists()
    loaded = load_artifact(result.artifact_uri)
    assert isinstance(loaded.model, model_type)
    assert loaded.metadata["model_sha256"] == result.artifact_digest
    assert loaded.metadata["metrics"] == result.metrics
    assert loaded.metadata["data_version"] == sample_lake.base.id
    assert loaded.metadata["hyperparameters"] == result.hyperparameters
    again = evaluate_artifact(kind, result.artifact_uri, sample_lake.root, sample_lake.base.id)
    assert again == result.metrics


@pytest.mark.parametrize("kind", KINDS)
def test_lineage_and_card_facts_are_filled(sample_lake, kind):
    result = sample_lake.results[kind]
    assert result.model_kind == kind
    assert result.data_version == sample_lake.base.id
    assert result.code_version == "unknown" or re.fullmatch(r"[0-9a-f]{40}", result.code_version)
    facts = result.card_facts
    fields = facts.data_schema["fields"]
    assert {f["source"] for f in fields} <= {"CRM", "ERP", "logs"}
    assert all(f["type"] and f["description"] for f in fields)
    for data in (facts.training_data, facts.evaluation_data):
        assert data["data_version"] == sample_lake.base.id
        assert data["row_count"] > 0
        assert "2023-01-01" <= data["period_start"] <= data["period_end"] <= "2024-12-31"
    assert (
        facts.training_data["period_end"] < facts.evaluation_data["period_start"]
        or kind == "segmentation"
    )
    assert all(facts.text[key] for key in ("data_schema", "training_data", "evaluation_data"))
    # The card's own validation accepts them as they are.
    assert section_data_clean(key="data_schema", data=facts.data_schema) == facts.data_schema
    for key in ("training_data", "evaluation_data"):
        assert section_data_clean(key=key, data=getattr(facts, key)) == getattr(facts, key)


def test_personal_data_is_flagged_where_the_model_uses_it(sample_lake):
    def personal(kind):
        fields = sample_lake.results[kind].card_facts.data_schema["fields"]
        return {f["name"] for f in fields if f["personal_data"]}

    assert personal("forecasting") == set()
    assert {
        "transactions.customer_id",
        "transactions.amount",
        "customers.consent_profiling",
    } <= personal("segmentation")
    assert {"transactions.customer_id", "transactions.product_id"} <= personal("recommendation")
    text = sample_lake.results["segmentation"].card_facts.text["training_data"]
    assert re.search(r"\d+ buyers without profiling consent were left out", text)


@pytest.mark.parametrize("kind", KINDS)
def test_registration_payload_passes_the_registry_checks(sample_lake, kind):
    """The result maps onto the registry's registration body without rework."""
    result = sample_lake.results[kind]
    body = {
        "version": "1.0.0",
        "artifact_uri": result.artifact_uri,
        "image_digest": result.artifact_digest,
        "data_version": result.data_version,
        "code_version": "0123456789abcdef0123456789abcdef01234567",
        "pipeline_run_id": result.run_id,
        "hyperparameters": result.hyperparameters,
        "metrics": result.metrics,
        "metric_slices": result.metric_slices,
    }
    try:
        cleaned = registration_clean(model=RegisteredModel(slug=kind, kind=kind), data=body)
    except ValidationError as error:  # pragma: no cover - shows which field failed
        pytest.fail(f"registry refused the payload: {error.message_dict}")
    assert cleaned["metrics"] == result.metrics


def test_run_logs_every_step(sample_lake):
    lines = sample_lake.logs["forecasting"]
    for step in ("snapshot", "validate", "features", "train", "evaluate", "package"):
        assert any(line.startswith(f"step {step} done in ") for line in lines)
    assert any("content hash verified" in line for line in lines)
    assert any(line.startswith("metrics: mae=") for line in lines)

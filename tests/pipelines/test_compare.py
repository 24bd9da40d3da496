"""The retraining decision's inputs: the production model scored on the new snapshot's
held-out data, and the rule that says whether the new version is better."""

import pytest

from pipelines.artifacts import ArtifactError, local_path
from pipelines.compare import RULES, evaluate_artifact, is_better
from pipelines.steps import run_pipeline


def test_rules_name_one_primary_metric_per_kind():
    assert {k: (r.metric, r.higher_is_better) for k, r in RULES.items()} == {
        "forecasting": ("mape", False),
        "segmentation": ("silhouette", True),
        "recommendation": ("hit_rate_at_k", True),
    }


def test_is_better_forecasting_lower_mape_wins():
    new = {"mape": 0.20, "baseline_mape": 0.5}
    assert is_better("forecasting", new, {"mape": 0.25})[0] is True
    ok, why = is_better("forecasting", new, {"mape": 0.19})
    assert ok is False
    assert why.startswith("mape 0.2 against 0.19 in production (lower is better): not better")
    assert is_better("forecasting", new, {"mape": 0.20})[0] is False  # a tie is not better
    assert is_better("forecasting", new, {"mape": 0.19}, tolerance=0.1)[0] is True


def test_is_better_refuses_a_model_that_loses_to_its_baseline():
    ok, why = is_better("forecasting", {"mape": 0.6, "baseline_mape": 0.5}, {"mape": 0.9})
    assert ok is False and "does not beat the seasonal-naive baseline" in why
    ok, why = is_better(
        "recommendation", {"hit_rate_at_k": 0.2, "baseline_hit_rate_at_k": 0.25}, None
    )
    assert ok is False and "does not beat the popularity baseline" in why


def test_is_better_segmentation_higher_silhouette_without_tiny_segments():
    good = {"silhouette": 0.30, "smallest_segment_share": 0.05}
    assert is_better("customer-segmentation", good, {"silhouette": 0.25})[0] is True
    assert is_better("segmentation", good, {"silhouette": 0.31})[0] is False
    ok, why = is_better(
        "segmentation", {"silhouette": 0.5, "smallest_segment_share": 0.01}, {"silhouette": 0.2}
    )
    assert ok is False and "below 2%" in why


def test_is_better_with_nothing_in_production_goes_forward():
    ok, why = is_better(
        "recommendation", {"hit_rate_at_k": 0.3, "baseline_hit_rate_at_k": 0.2}, None
    )
    assert ok is True and "no production version" in why
    with pytest.raises(ValueError, match="tolerance"):
        is_better("recommendation", {"hit_rate_at_k": 0.3}, None, tolerance=-0.1)


@pytest.mark.parametrize("kind", ["forecasting", "segmentation", "recommendation"])
def test_production_and_new_version_scored_on_the_same_holdout(sample_lake, kind):
    """Production trained on the old snapshot, the new version on the shifted one: the
    production model scored on the shifted snapshot uses the new run's hold-out data
    and baseline, so the comparison is like for like."""
    production = sample_lake.results[kind]
    new = run_pipeline(
        model_kind=kind,
        lake_root=sample_lake.root,
        artifact_root=sample_lake.artifacts,
        snapshot_id=sample_lake.shifted.id,
        run_id=f"{kind}-shifted",
    )
    current = evaluate_artifact(
        kind, production.artifact_uri, sample_lake.root, sample_lake.shifted.id
    )
    assert set(current) == set(new.metrics)
    baselines = {k: v for k, v in new.metrics.items() if k.startswith("baseline_")}
    assert baselines == {k: current[k] for k in baselines}
    assert current != production.metrics  # other data, other scores
    ok, why = is_better(kind, new.metrics, current)
    assert isinstance(ok, bool) and RULES[kind].metric in why


def test_evaluate_artifact_refuses_wrong_kind_or_altered_model(sample_lake, tmp_path):
    uri = sample_lake.results["segmentation"].artifact_uri
    with pytest.raises(ValueError, match="holds a segmentation model, not forecasting"):
        evaluate_artifact("forecasting", uri, sample_lake.root, sample_lake.base.id)
    copy = run_pipeline(
        model_kind="recommendation",
        lake_root=sample_lake.root,
        artifact_root=tmp_path,
        snapshot_id=sample_lake.base.id,
    )
    model_file = local_path(copy.artifact_uri) / "model.joblib"
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"\0")
    with pytest.raises(ArtifactError, match="does not match its recorded hash"):
        evaluate_artifact(
            "recommendation", copy.artifact_uri, sample_lake.root, sample_lake.base.id
        )


# --- ties and tolerance boundaries ---------------------------------------------------------
# The values are exact in binary floating point (0.5 * 0.25 == 0.125), so "at the
# boundary" really is the boundary and not a rounding either side of it.

GUARDS_MET = {
    "forecasting": {"baseline_mape": 0.9},
    "segmentation": {"smallest_segment_share": 0.05},
    "recommendation": {"baseline_hit_rate_at_k": 0.01},
}


@pytest.mark.parametrize("kind", ["forecasting", "segmentation", "recommendation"])
def test_is_better_tie_is_not_better_in_either_direction(kind):
    """A new version scoring exactly production's primary metric is not better, whether
    lower (MAPE) or higher (silhouette, hit rate) is better: retraining must improve."""
    metric = RULES[kind].metric
    ok, why = is_better(kind, {metric: 0.5, **GUARDS_MET[kind]}, {metric: 0.5})
    assert ok is False and ": not better;" in why


@pytest.mark.parametrize(
    ("kind", "nudge"),
    [("forecasting", -1e-9), ("segmentation", 1e-9), ("recommendation", 1e-9)],
)
def test_is_better_the_smallest_improvement_is_better(kind, nudge):
    """Just past the tie in the metric's good direction counts as better: the tie rule
    is a strict comparison, not a rounding."""
    metric = RULES[kind].metric
    assert is_better(kind, {metric: 0.5 + nudge, **GUARDS_MET[kind]}, {metric: 0.5})[0] is True
    assert is_better(kind, {metric: 0.5 - nudge, **GUARDS_MET[kind]}, {metric: 0.5})[0] is False


@pytest.mark.parametrize(
    ("kind", "at_boundary", "inside", "outside"),
    [
        # lower is better: 25% slack on 0.5 allows up to (not including) 0.625
        ("forecasting", 0.625, 0.624, 0.626),
        # higher is better: 25% slack on 0.5 allows down to (not including) 0.375
        ("segmentation", 0.375, 0.376, 0.374),
        ("recommendation", 0.375, 0.376, 0.374),
    ],
)
def test_is_better_tolerance_boundary_is_exclusive_in_either_direction(
    kind, at_boundary, inside, outside
):
    """With a tolerance, a new version exactly that much worse is not better (as a tie
    is not better with no tolerance); anything inside the slack is, anything past not."""
    metric = RULES[kind].metric
    current = {metric: 0.5}

    def judged(value: float) -> bool:
        return is_better(kind, {metric: value, **GUARDS_MET[kind]}, current, tolerance=0.25)[0]

    assert judged(at_boundary) is False
    assert judged(inside) is True
    assert judged(outside) is False


def test_is_better_guards_at_their_boundaries():
    """The guards compare the new version with its own baselines: a MAPE equal to the
    seasonal-naive baseline's, or a hit rate equal to the popularity baseline's, does
    not beat it; a smallest segment of exactly 2% is allowed."""
    ok, why = is_better("forecasting", {"mape": 0.5, "baseline_mape": 0.5}, None)
    assert ok is False and "does not beat the seasonal-naive baseline" in why
    ok, why = is_better(
        "recommendation", {"hit_rate_at_k": 0.25, "baseline_hit_rate_at_k": 0.25}, None
    )
    assert ok is False and "does not beat the popularity baseline" in why
    ok, why = is_better("segmentation", {"silhouette": 0.3, "smallest_segment_share": 0.02}, None)
    assert ok is True and "at least 2%" in why

"""The review's "metrics not worse than production" check at its edges: a tie passes in
either direction, a metric exactly at its tolerance passes, a hair past it fails, for
metrics where lower is better and where higher is better. The values are exact in
binary floating point, so the boundary is the boundary."""

import pytest

from governance.choices import ModelKind, Target
from governance.reviews.checks import checks_evaluate, metric_worsening
from governance.reviews.choices import CheckKey
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.governance.reviews.conftest import in_production

pytestmark = pytest.mark.django_db

# (model kind, metric, direction the catalogue gives it)
METRICS = [
    (ModelKind.FORECASTING, "mape", "lower"),
    (ModelKind.FORECASTING, "rmse", "lower"),
    (ModelKind.SEGMENTATION, "silhouette", "higher"),
    (ModelKind.SEGMENTATION, "davies_bouldin", "lower"),
    (ModelKind.RECOMMENDATION, "hit_rate_at_10", "higher"),
    (ModelKind.RECOMMENDATION, "ndcg_at_10", "higher"),
]


def _metrics_check(kind: str, metric: str, value: float, production: float, **policy):
    model = RegisteredModelFactory(slug=f"test-{kind}", kind=kind)
    in_production(ModelVersionFactory(model=model, metrics={metric: production}))
    candidate = ModelVersionFactory(model=model, metrics={metric: value})
    snapshot = {
        "check_metrics_not_worse": True,
        "metric_tolerance_default": 0.0,
        "metric_tolerances": {},
        "metric_directions": {},
        **policy,
    }
    (result,) = checks_evaluate(version=candidate, target=Target.CANARY, snapshot=snapshot)
    assert result.key == CheckKey.METRICS_NOT_WORSE
    return result


def _worse(direction: str, baseline: float, share: float) -> float:
    """The value `share` worse than `baseline` in the metric's direction."""
    return baseline * (1 + share) if direction == "lower" else baseline * (1 - share)


@pytest.mark.parametrize(("kind", "metric", "direction"), METRICS)
def test_metrics_check_tie_passes_with_no_tolerance(kind, metric, direction):
    """The same score as production is not worse, whichever way is better."""
    result = _metrics_check(kind, metric, 0.5, 0.5)
    assert result.passed, result.detail
    assert "1 metric within tolerance" in result.detail


@pytest.mark.parametrize(("kind", "metric", "direction"), METRICS)
def test_metrics_check_any_worsening_fails_with_no_tolerance(kind, metric, direction):
    """Just past the tie in the bad direction fails; just past it in the good one passes."""
    nudge = 1e-9 if direction == "lower" else -1e-9
    worse = _metrics_check(kind, metric, 0.5 + nudge, 0.5)
    assert not worse.passed and f"{metric} " in worse.detail
    better = _metrics_check(kind, metric, 0.5 - nudge, 0.5)
    assert better.passed, better.detail


@pytest.mark.parametrize(("kind", "metric", "direction"), METRICS)
@pytest.mark.parametrize(
    ("share", "passed"), [(0.25, True), (0.2, True), (0.26, False), (-0.5, True)]
)
def test_metrics_check_tolerance_boundary_is_inclusive_in_either_direction(
    kind, metric, direction, share, passed
):
    """With a 25% tolerance, exactly 25% worse passes (not worse *beyond* the
    tolerance), 26% worse fails, and better always passes; the tolerance may come from
    the policy's default or from the metric's own entry."""
    value = _worse(direction, 0.5, share)
    by_default = _metrics_check(kind, metric, value, 0.5, metric_tolerance_default=0.25)
    assert by_default.passed is passed, by_default.detail
    by_metric = _metrics_check(
        kind, metric, value, 0.5, metric_tolerance_default=0.0, metric_tolerances={metric: 0.25}
    )
    assert by_metric.passed is passed, by_metric.detail
    if not passed:
        assert "tolerance 25.0%" in by_default.detail


@pytest.mark.parametrize("direction", ["lower", "higher"])
def test_metrics_check_declared_direction_tie_and_boundary(direction):
    """A metric the catalogue does not know is judged in the direction the policy
    declares: a tie and exactly the tolerance pass, past it fails."""
    declared = {"metric_directions": {"uplift": direction}, "metric_tolerance_default": 0.25}
    assert _metrics_check(ModelKind.RECOMMENDATION, "uplift", 0.5, 0.5, **declared).passed
    at_boundary = _worse(direction, 0.5, 0.25)
    assert _metrics_check(ModelKind.RECOMMENDATION, "uplift", at_boundary, 0.5, **declared).passed
    past = _worse(direction, 0.5, 0.26)
    assert not _metrics_check(ModelKind.RECOMMENDATION, "uplift", past, 0.5, **declared).passed


@pytest.mark.parametrize(
    ("value", "baseline", "direction", "expected"),
    [
        (0.5, 0.5, "lower", 0.0),
        (0.5, 0.5, "higher", 0.0),
        (0.625, 0.5, "lower", 0.25),
        (0.375, 0.5, "higher", 0.25),
        (0.375, 0.5, "lower", -0.25),
        (0.625, 0.5, "higher", -0.25),
        # a zero baseline: the absolute difference
        (0.0, 0.0, "higher", 0.0),
        (0.25, 0.0, "lower", 0.25),
        (-0.25, 0.0, "higher", 0.25),
        # a negative baseline (e.g. a score below zero): relative to its magnitude
        (-0.625, -0.5, "higher", 0.25),
        (-0.375, -0.5, "lower", 0.25),
    ],
)
def test_metric_worsening_sign_in_either_direction(value, baseline, direction, expected):
    """How much worse, relative to production: zero for a tie, positive when worse in
    the metric's direction, negative when better."""
    assert metric_worsening(value=value, baseline=baseline, direction=direction) == expected


# What the training pipelines report (pipelines/kinds), beside the names above that
# versions registered by CI use.
PIPELINE_METRICS = [
    (ModelKind.FORECASTING, "wape", "lower"),
    (ModelKind.RECOMMENDATION, "hit_rate_at_k", "higher"),
    (ModelKind.RECOMMENDATION, "precision_at_k", "higher"),
    (ModelKind.RECOMMENDATION, "recall_at_k", "higher"),
    (ModelKind.RECOMMENDATION, "ndcg_at_k", "higher"),
    (ModelKind.RECOMMENDATION, "catalogue_coverage", "higher"),
]


@pytest.mark.parametrize(("kind", "metric", "direction"), PIPELINE_METRICS)
def test_metrics_check_judges_the_metrics_the_pipelines_report(kind, metric, direction):
    """A version the portal's own training pipeline registered is judged on the metrics
    it reports: a recommendation 40% worse on hit rate@k fails the check instead of
    passing with "0 metrics within tolerance" (its names were not in the catalogue)."""
    worse = _metrics_check(kind, metric, _worse(direction, 0.5, 0.4), 0.5)
    assert not worse.passed and f"{metric} " in worse.detail
    tie = _metrics_check(kind, metric, 0.5, 0.5)
    assert "1 metric within tolerance" in tie.detail


def test_each_pipelines_comparison_metric_has_a_direction_in_the_catalogue():
    """The metric each training pipeline compares with production is one the review
    board's check knows, in the same direction."""
    from governance.metrics import metric_spec
    from pipelines.kinds import kind_for

    for kind in (ModelKind.FORECASTING, ModelKind.SEGMENTATION, ModelKind.RECOMMENDATION):
        rule = kind_for(kind).comparison
        spec = metric_spec(kind=kind, name=rule.metric)
        assert spec is not None, (kind, rule.metric)
        assert spec.lower_is_better is not rule.higher_is_better

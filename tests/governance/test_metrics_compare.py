"""The version page's comparison with production (`metrics_compare`): a tie reads
"same" whichever way is better, and better or worse follow the metric's direction."""

import pytest

from governance.choices import ModelKind
from governance.selectors.registry import metrics_compare
from tests.factories import ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db

# (model kind, metric, lower is better)
METRICS = [
    (ModelKind.FORECASTING, "mape", True),
    (ModelKind.SEGMENTATION, "silhouette", False),
    (ModelKind.SEGMENTATION, "davies_bouldin", True),
    (ModelKind.RECOMMENDATION, "hit_rate_at_10", False),
]


def _verdict(kind: str, metric: str, value: float, baseline: float) -> str:
    model = RegisteredModelFactory(slug=f"test-{kind}", kind=kind)
    version = ModelVersionFactory(model=model, metrics={metric: value})
    production = ModelVersionFactory(model=model, metrics={metric: baseline})
    (row,) = metrics_compare(version=version, baseline=production)
    assert row.name == metric
    return row.verdict


@pytest.mark.parametrize(("kind", "metric", "lower_is_better"), METRICS)
def test_metrics_compare_tie_is_same_in_either_direction(kind, metric, lower_is_better):
    """Equal scores, and differences below float noise (1e-12), are "same"."""
    assert _verdict(kind, metric, 0.5, 0.5) == "same"
    assert _verdict(kind, metric, 0.5 + 1e-13, 0.5) == "same"
    assert _verdict(kind, metric, 0.5 - 1e-13, 0.5) == "same"


@pytest.mark.parametrize(("kind", "metric", "lower_is_better"), METRICS)
def test_metrics_compare_better_and_worse_follow_the_direction(kind, metric, lower_is_better):
    """The smallest real change reads better in the metric's good direction, worse in
    the other."""
    up, down = _verdict(kind, metric, 0.5 + 1e-6, 0.5), _verdict(kind, metric, 0.5 - 1e-6, 0.5)
    assert (up, down) == (("worse", "better") if lower_is_better else ("better", "worse"))


def test_metrics_compare_without_a_direction_or_a_baseline_gives_no_verdict():
    """A metric the catalogue does not know has no verdict, even when it changed; with
    nothing in production there is nothing to compare."""
    model = RegisteredModelFactory(slug="test-recommendation", kind=ModelKind.RECOMMENDATION)
    version = ModelVersionFactory(model=model, metrics={"uplift": 0.6})
    production = ModelVersionFactory(model=model, metrics={"uplift": 0.5})
    (row,) = metrics_compare(version=version, baseline=production)
    assert row.verdict == "" and row.change == pytest.approx(0.1)
    (alone,) = metrics_compare(version=version, baseline=None)
    assert alone.verdict == "" and alone.change is None and alone.baseline is None

"""The evaluation metrics each kind of model is judged by, and which way is better.

The pipeline may send any other metric as well; those are shown as they come, with no
direction (neither better nor worse).
"""

from dataclasses import dataclass

from governance.choices import ModelKind


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str
    lower_is_better: bool
    percent: bool = False  # a share in [0, 1], shown as a percentage


CATALOGUE: dict[str, tuple[MetricSpec, ...]] = {
    ModelKind.FORECASTING: (
        MetricSpec("mae", "MAE (units)", lower_is_better=True),
        MetricSpec("mape", "MAPE", lower_is_better=True, percent=True),
        MetricSpec("rmse", "RMSE (units)", lower_is_better=True),
        MetricSpec("wape", "WAPE", lower_is_better=True, percent=True),
    ),
    ModelKind.SEGMENTATION: (
        MetricSpec("silhouette", "Silhouette score", lower_is_better=False),
        MetricSpec("davies_bouldin", "Davies-Bouldin index", lower_is_better=True),
        MetricSpec("n_clusters", "Clusters", lower_is_better=False),
    ),
    ModelKind.RECOMMENDATION: (
        MetricSpec("hit_rate_at_10", "Hit rate@10", lower_is_better=False, percent=True),
        MetricSpec("coverage", "Catalogue coverage", lower_is_better=False, percent=True),
        MetricSpec("ndcg_at_10", "NDCG@10", lower_is_better=False),
        # The names the portal's own training pipeline reports (k is its setting).
        MetricSpec("hit_rate_at_k", "Hit rate@k", lower_is_better=False, percent=True),
        MetricSpec("precision_at_k", "Precision@k", lower_is_better=False, percent=True),
        MetricSpec("recall_at_k", "Recall@k", lower_is_better=False, percent=True),
        MetricSpec("ndcg_at_k", "NDCG@k", lower_is_better=False),
        MetricSpec("catalogue_coverage", "Catalogue coverage", lower_is_better=False, percent=True),
    ),
}


def metric_spec(*, kind: str, name: str) -> MetricSpec | None:
    for spec in CATALOGUE.get(kind, ()):
        if spec.name == name:
            return spec
    return None


def metric_names_ordered(*, kind: str, names: set[str]) -> list[str]:
    """The catalogue's metrics first, in catalogue order, then the others by name."""
    known = [spec.name for spec in CATALOGUE.get(kind, ()) if spec.name in names]
    return known + sorted(names - set(known))


def metric_label(*, kind: str, name: str) -> str:
    spec = metric_spec(kind=kind, name=name)
    return spec.label if spec else name

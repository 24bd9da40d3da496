"""The metrics each kind of model is watched by in production, from the client's
architecture document: the PromQL that reads each one, its unit, which direction is
good, and the default warning and critical thresholds (editable per model).

Operational metrics come from the model server (`serving_*`, labelled model, version,
track); quality and drift metrics are computed by the portal's jobs and served on its
own `/metrics` (`portal_model_quality`, `portal_model_drift`).
"""

from dataclasses import dataclass

from governance.choices import ModelKind
from monitoring.choices import Panel, Unit

_LATENCY_P95 = (
    "histogram_quantile(0.95, sum by (le) "
    '(rate(serving_request_duration_seconds_bucket{{model="{model}"}}[5m])))'
)
_THROUGHPUT = 'sum(rate(serving_requests_total{{model="{model}"}}[5m]))'
_ERROR_RATE = (
    'sum(rate(serving_requests_total{{model="{model}",outcome="error"}}[5m]))'
    ' / sum(rate(serving_requests_total{{model="{model}"}}[5m]))'
)


def _quality(metric: str) -> str:
    return f'max(portal_model_quality{{{{model="{{model}}",metric="{metric}"}}}})'


def _drift(method: str, feature: str = "") -> str:
    feature_match = f',feature="{feature}"' if feature else ',feature!="prediction"'
    return f'max(portal_model_drift{{{{model="{{model}}",method="{method}"{feature_match}}}}})'


def by_track(query: str) -> str:
    """`query` with each aggregation kept apart by the `track` label: `sum(...)` and
    `max(...)` become `sum by (track) (...)`, `sum by (le) (...)` keeps `track` too."""
    query = query.replace("sum by (le) (", "sum by (le, track) (")
    for aggregation in ("sum", "max"):
        query = query.replace(f"{aggregation}(", f"{aggregation} by (track) (")
    return query


@dataclass(frozen=True)
class CatalogueEntry:
    key: str
    label: str
    promql: str  # a template: `{model}` is the model's slug
    unit: str
    lower_is_better: bool
    warning: float
    critical: float
    panel: str

    def query(self, *, model: str) -> str:
        return self.promql.format(model=model)

    def query_by_track(self, *, model: str) -> str:
        """The same query kept apart by track (stable, canary), for the dashboards'
        canary-against-stable view; the alert rules use `query`, over both tracks."""
        return by_track(self.query(model=model))

    def breached(self, *, value: float, threshold: float) -> bool:
        return value > threshold if self.lower_is_better else value < threshold


def _latency(warning: float = 0.2, critical: float = 0.5) -> CatalogueEntry:
    return CatalogueEntry(
        "latency_p95",
        "Latency p95",
        _LATENCY_P95,
        Unit.SECONDS,
        True,
        warning,
        critical,
        Panel.LATENCY,
    )


CATALOGUE: dict[str, tuple[CatalogueEntry, ...]] = {
    ModelKind.FORECASTING: (
        CatalogueEntry("mae", "MAE", _quality("mae"), Unit.UNITS, True, 400, 500, Panel.ACCURACY),
        CatalogueEntry(
            "mape", "MAPE", _quality("mape"), Unit.SHARE, True, 0.15, 0.20, Panel.ACCURACY
        ),
        CatalogueEntry(
            "rmse", "RMSE", _quality("rmse"), Unit.UNITS, True, 550, 700, Panel.ACCURACY
        ),
        CatalogueEntry(
            "data_drift",
            "Data drift (KL divergence)",
            _drift("kl"),
            Unit.SCORE,
            True,
            0.1,
            0.2,
            Panel.DRIFT,
        ),
        _latency(),
        CatalogueEntry(
            "throughput",
            "Throughput",
            _THROUGHPUT,
            Unit.PER_SECOND,
            False,
            1.0,
            0.1,
            Panel.LATENCY,
        ),
    ),
    ModelKind.SEGMENTATION: (
        CatalogueEntry(
            "silhouette",
            "Silhouette score",
            _quality("silhouette"),
            Unit.SCORE,
            False,
            0.25,
            0.15,
            Panel.ACCURACY,
        ),
        CatalogueEntry(
            "cluster_distribution",
            "Cluster distribution shift (PSI)",
            _drift("psi", "prediction"),
            Unit.SCORE,
            True,
            0.1,
            0.25,
            Panel.ANOMALY,
        ),
        CatalogueEntry(
            "feature_drift",
            "Feature drift (normed Wasserstein)",
            _drift("wasserstein"),
            Unit.SCORE,
            True,
            0.1,
            0.2,
            Panel.DRIFT,
        ),
        _latency(),
    ),
    ModelKind.RECOMMENDATION: (
        CatalogueEntry(
            "hit_rate",
            "Hit rate@10",
            _quality("hit_rate_at_10"),
            Unit.SHARE,
            False,
            0.2,
            0.1,
            Panel.ACCURACY,
        ),
        CatalogueEntry(
            "click_through_rate",
            "Click-through rate",
            _quality("click_through_rate"),
            Unit.SHARE,
            False,
            0.02,
            0.01,
            Panel.ACCURACY,
        ),
        CatalogueEntry(
            "revenue_uplift",
            "Revenue uplift",
            _quality("revenue_uplift"),
            Unit.RATIO,
            False,
            0.0,
            -0.05,
            Panel.ACCURACY,
        ),
        _latency(),
        CatalogueEntry(
            "error_rate", "Error rate", _ERROR_RATE, Unit.SHARE, True, 0.01, 0.05, Panel.ANOMALY
        ),
    ),
}


def catalogue_for(*, kind: str) -> tuple[CatalogueEntry, ...]:
    return CATALOGUE.get(kind, ())


def catalogue_entry(*, kind: str, key: str) -> CatalogueEntry | None:
    return next((e for e in catalogue_for(kind=kind) if e.key == key), None)

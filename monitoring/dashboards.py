"""A model's dashboard: the catalogue's queries over a chosen time range, panel by
panel in the client's mock-up layout, within a fixed budget of Prometheus queries.

Reads only (Prometheus and the portal's own drift records); when Prometheus cannot be
reached the panels say so and the stored records are still there to read.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitoring.choices import Panel
from monitoring.clients import PrometheusUnavailable, query_range
from monitoring.models import DriftResult, QualityResult

# The time ranges offered, each with the step that gives about 240 to 360 points.
RANGES: dict[str, tuple[timedelta, int]] = {
    "1h": (timedelta(hours=1), 15),
    "6h": (timedelta(hours=6), 60),
    "24h": (timedelta(hours=24), 300),
    "7d": (timedelta(days=7), 1800),
    "30d": (timedelta(days=30), 7200),
    "90d": (timedelta(days=90), 21600),
}
DEFAULT_RANGE = "24h"
# No dashboard page asks Prometheus more than this (a model has at most six metrics).
MAX_QUERIES_PER_PAGE = 8
LAYOUT = (Panel.ACCURACY, Panel.LATENCY, Panel.DRIFT, Panel.ANOMALY)


@dataclass
class Chart:
    panel: str
    title: str
    traces: list[dict] = field(default_factory=list)
    thresholds: list[dict] = field(default_factory=list)

    @property
    def script_id(self) -> str:
        return f"chart-{self.panel}"

    @property
    def data(self) -> dict:
        return {"title": self.title, "traces": self.traces, "thresholds": self.thresholds}


@dataclass
class Dashboard:
    range_key: str
    charts: list[Chart]
    queries: int
    error: str = ""
    drift_records: list = field(default_factory=list)
    quality_records: list = field(default_factory=list)


def dashboard_build(*, model, thresholds: list, range_key: str, now: datetime) -> Dashboard:
    """Charts for one model over `range_key` (falls back to 24 h for an unknown key),
    one series per track (stable, canary) of each metric. Stops asking Prometheus at
    its first failure: one error message, not six."""
    if range_key not in RANGES:
        range_key = DEFAULT_RANGE
    span, step = RANGES[range_key]
    charts = {panel: Chart(panel=panel, title=Panel(panel).label) for panel in LAYOUT}
    queries, error = 0, ""
    for row in thresholds[:MAX_QUERIES_PER_PAGE]:
        chart = charts[row.entry.panel]
        chart.thresholds += [
            {"label": f"{row.entry.label} warning", "value": row.warning, "level": "warning"},
            {"label": f"{row.entry.label} critical", "value": row.critical, "level": "critical"},
        ]
        if error:
            continue
        queries += 1
        try:
            series = query_range(
                query=row.entry.query_by_track(model=model.slug),
                start=now - span,
                end=now,
                step=step,
            )
        except PrometheusUnavailable as unavailable:
            error = str(unavailable)
            continue
        for one in series:
            track = one.labels.get("track", "")
            chart.traces.append(
                {
                    "name": f"{row.entry.label} ({track})" if track else row.entry.label,
                    "track": track,
                    "x": [datetime.fromtimestamp(t).isoformat() for t in one.times],
                    "y": one.values,
                }
            )
    drift = list(
        DriftResult.objects.filter(version__model=model)
        .select_related("version")
        .order_by("-window_end", "feature", "method")[:20]
    )
    quality = list(
        QualityResult.objects.filter(version__model=model)
        .select_related("version")
        .order_by("-window_end", "track", "metric")[:20]
    )
    return Dashboard(range_key, list(charts.values()), queries, error, drift, quality)

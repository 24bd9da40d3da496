"""The monitoring section of a version's evidence pack: its quality record (summary
figures per track and metric against the thresholds in force, and the latest windows
as a table), its drift record as a table and a chart, and the incidents of its model
while it served, registered from `MonitoringConfig.ready()` (the pack lives in
governance.reviews, below this app).

The chart is an SVG drawn here, on the server, and embedded as a data: URI image:
WeasyPrint prints it as vector graphics, with no browser, no Plotly image export and
no network.
"""

import base64
from collections import defaultdict
from datetime import UTC, datetime
from html import escape
from typing import Any

from django.db.models import Avg, Count, IntegerField, Max, Min, Q, Value

from governance.models import ModelVersion
from governance.reviews.evidence import EvidencePackSection, evidence_pack_section_register
from governance.rollouts.selectors import version_serving_since
from monitoring.choices import DriftVerdict
from monitoring.models import DriftResult, Incident, QualityResult
from monitoring.selectors import (
    EffectiveThreshold,
    figure_status,
    stored_source,
    thresholds_for,
)

CHART_WIDTH, CHART_HEIGHT = 640, 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 150, 12, 28
# The quality table lists the latest windows only (a window is evaluated every few
# minutes, so a version that served for months has tens of thousands); the summary
# figures above it cover every window.
QUALITY_WINDOWS_LISTED = 48
# Distinct in print and for the common colour blindnesses (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


def drift_chart_svg(
    series: dict[str, list[tuple[datetime, float]]], *, threshold: float | None
) -> str:
    """An SVG line chart: one line per series (x: window end, y: score), the threshold
    as a dashed line, the legend on the right. Empty string when nothing has a value."""
    points = [(at, value) for values in series.values() for at, value in values]
    if not points:
        return ""
    times = [at.timestamp() for at, _ in points]
    t0, t1 = min(times), max(times)
    top = max([value for _, value in points] + ([threshold] if threshold is not None else []))
    top = top * 1.1 or 1.0
    plot_w = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(at: datetime) -> float:
        return MARGIN_LEFT + (plot_w * (at.timestamp() - t0) / (t1 - t0) if t1 > t0 else plot_w / 2)

    def y(value: float) -> float:
        return MARGIN_TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        'font-family="sans-serif" font-size="10">',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#888"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        parts.append(
            f'<text x="{MARGIN_LEFT - 4}" y="{y(value) + 3:.1f}" text-anchor="end">'
            f"{value:.3g}</text>"
        )
    for at, anchor in (
        (datetime.fromtimestamp(t0, tz=UTC), "start"),
        (datetime.fromtimestamp(t1, tz=UTC), "end"),
    ):
        xpos = MARGIN_LEFT if anchor == "start" else MARGIN_LEFT + plot_w
        parts.append(
            f'<text x="{xpos}" y="{CHART_HEIGHT - 10}" text-anchor="{anchor}">{at:%Y-%m-%d}</text>'
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#D55E00" stroke-dasharray="4 3"/>'
        )
    for index, (name, values) in enumerate(sorted(series.items())):
        colour = PALETTE[index % len(PALETTE)]
        ordered = sorted(values)
        if ordered:
            path = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value in ordered)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
            for at, value in ordered:
                parts.append(
                    f'<circle cx="{x(at):.1f}" cy="{y(value):.1f}" r="2" fill="{colour}"/>'
                )
        legend_y = MARGIN_TOP + 12 + 14 * index
        parts.append(
            f'<rect x="{CHART_WIDTH - MARGIN_RIGHT + 10}" y="{legend_y - 8}" width="10" '
            f'height="10" fill="{colour}"/>'
            f'<text x="{CHART_WIDTH - MARGIN_RIGHT + 24}" y="{legend_y}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_data_uri(svg: str) -> str:
    """The SVG as a data: URI an <img> can print (WeasyPrint renders it as vectors)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _drift_summary(version: ModelVersion) -> dict[str, Any]:
    results = list(
        DriftResult.objects.filter(version=version, track="stable").order_by(
            "feature", "method", "window_end"
        )
    )
    by_feature: dict[tuple[str, str], list[DriftResult]] = defaultdict(list)
    for result in results:
        by_feature[(result.feature, result.method)].append(result)
    rows = []
    series: dict[str, list[tuple[datetime, float]]] = {}
    thresholds = set()
    for (feature, method), windows in by_feature.items():
        latest = windows[-1]
        rows.append(
            {
                "feature": feature,
                "method": latest.get_method_display(),
                "windows": len(windows),
                "drifted": sum(1 for w in windows if w.verdict == DriftVerdict.DRIFT),
                "latest_value": latest.value,
                "latest_verdict": latest.get_verdict_display(),
                "latest_end": latest.window_end,
                "threshold": latest.threshold,
            }
        )
        series[f"{feature} ({method})"] = [
            (w.window_end, w.value) for w in windows if w.value is not None
        ]
        thresholds.add(latest.threshold)
    threshold = thresholds.pop() if len(thresholds) == 1 else None
    svg = drift_chart_svg(series, threshold=threshold)
    return {"drift_rows": rows, "drift_chart": svg_data_uri(svg) if svg else ""}


def _breaches(thresholds: dict[str, EffectiveThreshold], level: str) -> Count | Value:
    """Count of the windows whose figure is beyond the metric's `level` ("warning" or
    "critical") threshold, as one conditional sum over every metric that has one."""
    beyond = Q()
    for metric, row in thresholds.items():
        limit = getattr(row, level)
        side = "value__gt" if row.entry.lower_is_better else "value__lt"
        beyond |= Q(metric=metric, **{side: limit})
    if not beyond:
        return Value(0, output_field=IntegerField())
    return Count("pk", filter=beyond)


def _quality_summary(version: ModelVersion) -> dict[str, Any]:
    """The version's quality record for the pack, on both tracks:

    - `quality_rows`: one per (track, metric): windows evaluated, windows with a figure
      (the others had too few joined predictions), mean / min / max of the figures,
      the latest figure and its window end, the warning and critical thresholds in
      force for the model (None for a metric the catalogue does not watch) and how
      many windows were beyond each, and the latest figure's status;
    - `quality_windows`: the latest QUALITY_WINDOWS_LISTED windows, newest first, each
      `{"track", "start", "end", "samples", "values": [value or None per metric]}`,
      `quality_metrics` naming the columns, `quality_windows_total` how many there are.

    A fixed number of queries whatever the number of windows."""
    thresholds: dict[str, EffectiveThreshold] = {}
    for row in thresholds_for(model=version.model):
        source = stored_source(row.entry)
        if source is not None and source[0] == "quality":
            thresholds[source[1]] = row
    results = QualityResult.objects.filter(version=version)
    groups = list(
        results.values("track", "metric")
        .annotate(
            windows=Count("pk"),
            figures=Count("value"),
            mean=Avg("value"),
            low=Min("value"),
            high=Max("value"),
            latest_end=Max("window_end", filter=Q(value__isnull=False)),
            warnings=_breaches(thresholds, "warning"),
            criticals=_breaches(thresholds, "critical"),
        )
        .order_by("track", "metric")
    )
    latest_of = Q(pk__in=[])
    for group in groups:
        if group["latest_end"] is not None:
            latest_of |= Q(
                track=group["track"], metric=group["metric"], window_end=group["latest_end"]
            )
    latest = {
        (track, metric): value
        for track, metric, value in results.filter(latest_of)
        .exclude(value=None)
        .values_list("track", "metric", "value")
    }
    rows = []
    for group in groups:
        threshold = thresholds.get(group["metric"])
        value = latest.get((group["track"], group["metric"]))
        rows.append(
            {
                **group,
                "label": threshold.entry.label if threshold else group["metric"],
                "unit": threshold.unit_label if threshold else "",
                "latest": value,
                "warning": threshold.warning if threshold else None,
                "critical": threshold.critical if threshold else None,
                "status": figure_status(row=threshold, value=value) if threshold else "",
            }
        )
    metrics = sorted({group["metric"] for group in groups})
    windows = (
        results.values("track", "window_start", "window_end")
        .annotate(samples=Max("sample_count"))
        .order_by("-window_end", "-window_start", "track")
    )
    listed = []
    shown = list(windows[:QUALITY_WINDOWS_LISTED])
    if shown:
        oldest = min(w["window_end"] for w in shown)
        figures = {
            (track, start, end, metric): value
            for track, start, end, metric, value in results.filter(
                window_end__gte=oldest
            ).values_list("track", "window_start", "window_end", "metric", "value")
        }
        for window in shown:
            key = (window["track"], window["window_start"], window["window_end"])
            listed.append(
                {
                    "track": window["track"],
                    "start": window["window_start"],
                    "end": window["window_end"],
                    "samples": window["samples"],
                    "values": [figures.get((*key, metric)) for metric in metrics],
                }
            )
    return {
        "quality_rows": rows,
        "quality_metrics": [thresholds[m].entry.label if m in thresholds else m for m in metrics],
        "quality_windows": listed,
        "quality_windows_total": windows.count(),
    }


def _incidents(version: ModelVersion) -> list[Incident]:
    """Incidents whose alert names this version, and, when it served production,
    those of its model that started meanwhile without naming a version."""
    names_it = Q(model_id=version.model_id, labels__version=version.version)
    wanted = names_it
    window = version_serving_since(version_id=version.pk)
    if window is not None:
        since, until = window
        during = Q(model_id=version.model_id, started_at__gte=since) & ~Q(labels__has_key="version")
        if until is not None:
            during &= Q(started_at__lt=until)
        wanted |= during
    return list(
        Incident.objects.filter(wanted)
        .prefetch_related("actions")
        .order_by("started_at", "pk")
        .distinct()
    )


def monitoring_evidence(version: ModelVersion) -> dict[str, Any]:
    """The quality record (summary and latest windows), the drift record (table and
    chart) and the incidents, for the pack's template."""
    return {
        **_quality_summary(version),
        **_drift_summary(version),
        "incidents": _incidents(version),
    }


def register_monitoring_evidence() -> None:
    evidence_pack_section_register(
        EvidencePackSection(
            anchor="monitoring",
            title="Monitoring summary and incidents",
            template="monitoring/evidence_section.html",
            build=monitoring_evidence,
            order=200,
        )
    )

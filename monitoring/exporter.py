"""`portal_model_quality` and `portal_model_drift` on the portal's /metrics, read from
the stored evaluations at scrape time (every pod answers the same; nothing is held in
process memory).

Each (version, track, metric) and (version, track, feature, method) shows its latest
window's figure, among windows that ended within the last two window lengths: a
version that stopped serving drops out instead of showing a stale figure forever.
Windows with not enough data show nothing (no sample), never a zero.
"""

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitoring.models import DriftResult, QualityResult


class EvaluationCollector(Collector):
    """The latest stored quality and drift figures as gauges."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        since = timezone.now() - timedelta(minutes=2 * settings.MONITORING_WINDOW_MINUTES)
        quality = GaugeMetricFamily(
            "portal_model_quality",
            "Quality of served predictions over the latest window (MAE, hit rate, ...)",
            labels=["model", "version", "track", "metric"],
        )
        latest: dict[tuple[str, ...], float] = {}
        rows = (
            QualityResult.objects.filter(window_end__gte=since, value__isnull=False)
            .order_by("window_end", "pk")
            .values_list("version__model__slug", "version__version", "track", "metric", "value")
        )
        for model, version, track, metric, value in rows:
            latest[(model, version, track, metric)] = value
        for labels, value in sorted(latest.items()):
            quality.add_metric(list(labels), value)
        yield quality

        drift = GaugeMetricFamily(
            "portal_model_drift",
            "Drift of served inputs from the training reference over the latest window",
            labels=["model", "version", "track", "feature", "method"],
        )
        latest = {}
        rows = (
            DriftResult.objects.filter(window_end__gte=since, value__isnull=False)
            .order_by("window_end", "pk")
            .values_list(
                "version__model__slug",
                "version__version",
                "track",
                "feature",
                "method",
                "value",
            )
        )
        for model, version, track, feature, method, value in rows:
            latest[(model, version, track, feature, method)] = value
        for labels, value in sorted(latest.items()):
            drift.add_metric(list(labels), value)
        yield drift

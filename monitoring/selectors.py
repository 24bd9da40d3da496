"""Reads for monitoring: a model's effective thresholds, incidents, and the stored
quality and drift figures set against the thresholds (canary against stable, the
fleet's worst status)."""

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import CharField, Count, F, OuterRef, Q, QuerySet, Subquery, Value
from django.http import Http404

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel, TargetAssignment
from governance.selectors.registry import SEMVER_DESC, models_overview
from monitoring.catalogue import CatalogueEntry, catalogue_for
from monitoring.choices import IncidentStatus, Panel, Severity, Unit
from monitoring.models import DriftResult, Incident, MetricThreshold, QualityResult


@dataclass(frozen=True)
class EffectiveThreshold:
    entry: CatalogueEntry
    warning: float
    critical: float
    overridden: bool
    query: str
    panel_label: str
    unit_label: str


def thresholds_for(*, model) -> list[EffectiveThreshold]:
    """Every catalogue metric of the model's kind with the thresholds in force: the
    model's own where set, the catalogue's defaults otherwise. One query."""
    own = {t.metric: t for t in MetricThreshold.objects.filter(model=model)}
    return _thresholds_in_force(model=model, own=own)


def _thresholds_in_force(*, model, own: dict[str, MetricThreshold]) -> list[EffectiveThreshold]:
    rows = []
    for entry in catalogue_for(kind=model.kind):
        mine = own.get(entry.key)
        rows.append(
            EffectiveThreshold(
                entry=entry,
                warning=mine.warning if mine else entry.warning,
                critical=mine.critical if mine else entry.critical,
                overridden=mine is not None,
                query=entry.query(model=model.slug),
                panel_label=Panel(entry.panel).label,
                unit_label=Unit(entry.unit).label,
            )
        )
    return rows


def incidents_list() -> QuerySet[Incident]:
    """Incidents newest first with their model and owner (no query per row)."""
    return (
        Incident.objects.select_related("model", "owner")
        .annotate(events=Count("timeline"))
        .order_by("-opened_at", "-pk")
    )


def incident_get(*, pk: int) -> Incident:
    """One incident with its timeline loaded, or 404."""
    incident = (
        Incident.objects.select_related("model", "owner")
        .prefetch_related("timeline", "actions")
        .filter(pk=pk)
        .first()
    )
    if incident is None:
        raise Http404(f"No incident {pk}.")
    return incident


def monitored_models() -> list[tuple[Any, list[EffectiveThreshold]]]:
    """Every registered model, by slug, with its thresholds in force: what the rules
    file and the dashboard are generated from. Two queries whatever the number of models."""
    models = sorted(models_overview(), key=lambda model: model.slug)
    own: dict[int, dict[str, MetricThreshold]] = defaultdict(dict)
    for threshold in MetricThreshold.objects.filter(model__in=[m.pk for m in models]):
        own[threshold.model_id][threshold.metric] = threshold
    return [(model, _thresholds_in_force(model=model, own=own[model.pk])) for model in models]


# -- stored figures against thresholds: the canary/stable view and the fleet's status --

STATUS_ORDER = ("unknown", "ok", "warning", "critical")
_QUALITY_RE = re.compile(r'portal_model_quality\{[^}]*metric="([^"]+)"')
_DRIFT_RE = re.compile(r'portal_model_drift\{[^}]*method="([^"]+)",feature(!?=)"([^"]+)"')


def stored_source(entry: CatalogueEntry) -> tuple[str, str, str | None] | None:
    """Where the portal's own records hold a catalogue metric: ("quality", metric, None),
    ("drift", method, feature) with feature None for "every input feature" (the rule's
    `feature!="prediction"`), or None for a metric only Prometheus has (latency)."""
    query = entry.query(model="any")
    if match := _QUALITY_RE.search(query):
        return ("quality", match.group(1), None)
    if match := _DRIFT_RE.search(query):
        method, operator, feature = match.groups()
        return ("drift", method, feature if operator == "=" else None)
    return None


def figure_status(*, row: EffectiveThreshold, value: float | None) -> str:
    """ok, warning or critical for a value against a metric's thresholds (unknown
    without a value)."""
    if value is None:
        return "unknown"
    if row.entry.breached(value=value, threshold=row.critical):
        return "critical"
    if row.entry.breached(value=value, threshold=row.warning):
        return "warning"
    return "ok"


def _worst(statuses) -> str:
    return max(statuses, key=STATUS_ORDER.index, default="unknown")


@dataclass
class StoredFigures:
    """The latest stored figures of a set of models: quality by (model id, track,
    metric); drift by (model id, track, method, feature), each with its version."""

    quality: dict[tuple[int, str, str], tuple[str, float]] = field(default_factory=dict)
    drift: dict[tuple[int, str, str, str], tuple[str, float]] = field(default_factory=dict)

    def value(self, *, model_id: int, track: str, row: EffectiveThreshold):
        """(version, value) of a metric on a track, or None."""
        source = stored_source(row.entry)
        if source is None:
            return None
        if source[0] == "quality":
            return self.quality.get((model_id, track, source[1]))
        found = [
            figure
            for (mid, trk, method, feature), figure in self.drift.items()
            if (mid, trk, method) == (model_id, track, source[1])
            and (feature == source[2] if source[2] else feature != "prediction")
        ]
        return max(found, key=lambda figure: figure[1], default=None)


def _recent_figures(model, model_ids: list[int], since: datetime, *, name: str, feature: Any):
    """One table's recent figures as the columns `stored_figures` reads, in one order
    for both tables (a UNION pairs columns by position)."""
    return (
        model.objects.filter(
            version__model_id__in=model_ids, window_end__gte=since, value__isnull=False
        )
        .order_by()
        .annotate(
            f_source=Value(model._meta.model_name, output_field=CharField()),
            f_model=F("version__model_id"),
            f_version=F("version__version"),
            f_track=F("track"),
            f_name=F(name),
            f_feature=feature,
            f_value=F("value"),
            f_end=F("window_end"),
            f_pk=F("pk"),
        )
        .values_list(
            "f_source", "f_model", "f_version", "f_track", "f_name", "f_feature", "f_value",
            "f_end", "f_pk",
        )
    )  # fmt: skip


def stored_figures(*, model_ids: list[int], now: datetime) -> StoredFigures:
    """The figures of the windows that ended within two window lengths of `now`, the
    latest per key. One query (quality and drift records together) whatever the number
    of models or records."""
    since = now - timedelta(minutes=2 * settings.MONITORING_WINDOW_MINUTES)
    quality = _recent_figures(
        QualityResult, model_ids, since, name="metric", feature=Value("", CharField())
    )
    drift = _recent_figures(DriftResult, model_ids, since, name="method", feature=F("feature"))
    figures = StoredFigures()
    drift_source = DriftResult._meta.model_name
    rows = quality.union(drift, all=True).order_by("f_end", "f_pk")
    for source, model_id, version, track, name, feature, value, _end, _pk in rows:
        if source == drift_source:
            figures.drift[(model_id, track, name, feature)] = (version, value)
        else:
            figures.quality[(model_id, track, name)] = (version, value)
    return figures


@dataclass
class TrackRow:
    """One metric of the canary-against-stable view."""

    label: str
    unit_label: str
    stable: tuple[str, float] | None
    canary: tuple[str, float] | None
    stable_status: str
    canary_status: str


def track_comparison(
    *, model, thresholds: list[EffectiveThreshold], now: datetime
) -> list[TrackRow]:
    """The model's stored metrics side by side for its stable and canary tracks, each
    with its status against the thresholds; metrics only Prometheus holds are left to
    the charts."""
    figures = stored_figures(model_ids=[model.pk], now=now)
    rows = []
    for row in thresholds:
        if stored_source(row.entry) is None:
            continue
        stable = figures.value(model_id=model.pk, track="stable", row=row)
        canary = figures.value(model_id=model.pk, track="canary", row=row)
        rows.append(
            TrackRow(
                label=row.entry.label,
                unit_label=row.unit_label,
                stable=stable,
                canary=canary,
                stable_status=figure_status(row=row, value=stable[1] if stable else None),
                canary_status=figure_status(row=row, value=canary[1] if canary else None),
            )
        )
    return rows


@dataclass
class FleetRow:
    model: Any
    status: str
    reasons: list[str]
    open_incidents: int


def fleet_models() -> list[RegisteredModel]:
    """Every model by slug, each with the versions serving production and canary and
    its highest version (`production_version`, `canary_version`, `latest_version`:
    version strings, None when there is none) and its open incidents (`open_critical`,
    `open_other`: counts of firing or acknowledged ones). One query whatever the number
    of models, versions or incidents."""

    def serving(target: str) -> Subquery:
        return Subquery(
            TargetAssignment.objects.filter(model=OuterRef("pk"), target=target).values(
                "version__version"
            )[:1]
        )

    latest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by(*SEMVER_DESC)
    open_incident = Q(incidents__status__in=(IncidentStatus.FIRING, IncidentStatus.ACKNOWLEDGED))
    critical = Q(incidents__severity=Severity.CRITICAL)
    return list(
        RegisteredModel.objects.annotate(
            production_version=serving(Target.PRODUCTION),
            canary_version=serving(Target.CANARY),
            latest_version=Subquery(latest.values("version")[:1]),
            # incidents is the only to-many join: the counts are not multiplied.
            open_critical=Count("incidents", filter=open_incident & critical),
            open_other=Count("incidents", filter=open_incident & ~critical),
        ).order_by("slug")
    )


def fleet_status(*, now: datetime) -> list[FleetRow]:
    """Each model's worst current status (`fleet_models` gives the rows): its stored
    quality and drift figures against its thresholds, and its open incidents (an alert
    on latency or errors arrives as one). Three queries whatever the number of models,
    versions, figures or incidents."""
    models = fleet_models()
    ids = [model.pk for model in models]
    own: dict[int, dict[str, MetricThreshold]] = {}
    for threshold in MetricThreshold.objects.filter(model_id__in=ids):
        own.setdefault(threshold.model_id, {})[threshold.metric] = threshold
    figures = stored_figures(model_ids=ids, now=now)
    rows = []
    for model in models:
        statuses, reasons = [], []
        for entry in catalogue_for(kind=model.kind):
            mine = own.get(model.pk, {}).get(entry.key)
            row = EffectiveThreshold(
                entry=entry,
                warning=mine.warning if mine else entry.warning,
                critical=mine.critical if mine else entry.critical,
                overridden=mine is not None,
                query="",
                panel_label="",
                unit_label="",
            )
            for track in ("stable", "canary"):
                figure = figures.value(model_id=model.pk, track=track, row=row)
                status = figure_status(row=row, value=figure[1] if figure else None)
                statuses.append(status)
                if status in ("warning", "critical"):
                    reasons.append(f"{entry.label} {figure[1]:.4g} on {track} ({status})")
        open_incidents = model.open_critical + model.open_other
        statuses += ["critical"] * model.open_critical + ["warning"] * model.open_other
        if open_incidents:
            reasons.append(f"{open_incidents} open incident(s)")
        rows.append(
            FleetRow(
                model=model,
                status=_worst(statuses),
                reasons=reasons,
                open_incidents=open_incidents,
            )
        )
    return rows

"""Reads for monitoring: a model's effective thresholds, incidents."""

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404

from governance.selectors.registry import models_overview
from monitoring.catalogue import CatalogueEntry, catalogue_for
from monitoring.choices import Panel, Unit
from monitoring.models import Incident, MetricThreshold


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
    file and the dashboard are generated from."""
    models = sorted(models_overview(), key=lambda model: model.slug)
    return [(model, thresholds_for(model=model)) for model in models]

"""Writes for monitoring: per-model thresholds, drift results per version and window."""

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from monitoring.catalogue import catalogue_entry
from monitoring.choices import DriftMethod, DriftVerdict, Unit
from monitoring.drift import DriftScore, sample_drift
from monitoring.models import DriftResult, MetricThreshold
from portal.audit.actors import Actor
from portal.audit.services import audit_record


def _thresholds_clean(*, entry, warning: Any, critical: Any) -> tuple[float, float]:
    errors: dict[str, str] = {}
    values: dict[str, float] = {}
    for name, value in (("warning", warning), ("critical", critical)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors[name] = "Enter a number."
        elif not math.isfinite(value):
            errors[name] = "Enter a finite number."
        elif entry.unit == Unit.SHARE and not 0 <= value <= 1:
            errors[name] = "A share lies between 0 and 1."
        elif entry.unit in (Unit.SECONDS, Unit.PER_SECOND, Unit.UNITS) and value < 0:
            errors[name] = "This metric is never negative."
        else:
            values[name] = float(value)
    if not errors:
        if entry.lower_is_better and values["critical"] <= values["warning"]:
            errors["critical"] = "Lower is better here: critical must be above warning."
        if not entry.lower_is_better and values["critical"] >= values["warning"]:
            errors["critical"] = "Higher is better here: critical must be below warning."
    if errors:
        raise ValidationError(errors)
    return values["warning"], values["critical"]


def threshold_set(
    *,
    model,
    metric: str,
    warning: Any,
    critical: Any,
    user: Any,
    actor: Actor,
    client_ip: str | None = None,
) -> MetricThreshold:
    """Set a model's warning and critical thresholds for one catalogue metric.

    Refuses (ValidationError with field errors) a metric not in the catalogue of the
    model's kind, values that are not finite numbers or outside the unit's range, and a
    critical threshold on the good side of the warning one. Side effects: audit
    `monitoring.threshold_set` with the values before (the defaults if none were set)
    and after; nothing when the values do not change.
    """
    entry = catalogue_entry(kind=model.kind, key=metric)
    if entry is None:
        raise ValidationError({"metric": f"No metric {metric!r} for {model.get_kind_display()}."})
    warning, critical = _thresholds_clean(entry=entry, warning=warning, critical=critical)
    with transaction.atomic():
        threshold = (
            MetricThreshold.objects.select_for_update().filter(model=model, metric=metric).first()
        )
        before = (
            {"warning": threshold.warning, "critical": threshold.critical}
            if threshold
            else {"warning": entry.warning, "critical": entry.critical}
        )
        after = {"warning": warning, "critical": critical}
        if threshold and before == after:
            return threshold
        if threshold is None:
            threshold = MetricThreshold(model=model, metric=metric)
        threshold.warning, threshold.critical = warning, critical
        threshold.updated_by = user
        threshold.updated_at = timezone.now()
        threshold.save()
        audit_record(
            action="monitoring.threshold_set",
            actor=actor,
            object_type="model",
            object_id=model.slug,
            payload={"metric": metric, "from": before, "to": after},
            client_ip=client_ip,
        )
    return threshold


def drift_record(
    *,
    version,
    track: str,
    window_start: datetime,
    window_end: datetime,
    scores: dict[str, Sequence[DriftScore]],
    actor: Actor,
) -> list[DriftResult]:
    """Store the drift scores of one version's features over one window.

    Recording the same window again replaces its scores (a job retried after a crash
    leaves one row per feature and method). Side effects: audit
    `monitoring.drift_recorded` with the window, the features that drifted and those
    without enough data.
    """
    if window_end <= window_start:
        raise ValidationError({"window_end": "A window ends after it starts."})
    rows = []
    with transaction.atomic():
        for feature, feature_scores in sorted(scores.items()):
            for score in feature_scores:
                row, _ = DriftResult.objects.update_or_create(
                    version=version,
                    track=track,
                    feature=feature,
                    method=score.method,
                    window_start=window_start,
                    window_end=window_end,
                    defaults={
                        "value": score.value,
                        "threshold": score.threshold,
                        "verdict": score.verdict,
                        "reference_count": score.reference_count,
                        "current_count": score.current_count,
                        "computed_at": timezone.now(),
                    },
                )
                rows.append(row)
        verdicts = {DriftVerdict.DRIFT: set(), DriftVerdict.NOT_ENOUGH_DATA: set()}
        for row in rows:
            if row.verdict in verdicts:
                verdicts[row.verdict].add(row.feature)
        audit_record(
            action="monitoring.drift_recorded",
            actor=actor,
            object_type=version.AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={
                "track": track,
                "window_start": window_start.isoformat(),
                "window_end": window_end.isoformat(),
                "drifted": sorted(verdicts[DriftVerdict.DRIFT]),
                "not_enough_data": sorted(verdicts[DriftVerdict.NOT_ENOUGH_DATA]),
            },
        )
    return rows


def drift_compute(
    *,
    version,
    track: str,
    window_start: datetime,
    window_end: datetime,
    reference: dict[str, Sequence[float]],
    current: dict[str, Sequence[float]],
    actor: Actor,
) -> list[DriftResult]:
    """Score every feature present on both sides by PSI, Jensen-Shannon, normed
    Wasserstein and KL (Evidently's thresholds) and record them with `drift_record`.
    A feature the serving side never sent is scored on no samples: not enough data."""
    scores = {
        feature: [
            sample_drift(reference=samples, current=current.get(feature, ()), method=method)
            for method in DriftMethod.values
        ]
        for feature, samples in reference.items()
    }
    return drift_record(
        version=version,
        track=track,
        window_start=window_start,
        window_end=window_end,
        scores=scores,
        actor=actor,
    )

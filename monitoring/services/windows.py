"""Writes for the evaluation of served predictions: training references, and the
quality and drift of each version over a window of its prediction log.

A window is evaluated by `window_evaluate` (the beat task `monitoring.evaluate_windows`
every few minutes, over the last MONITORING_WINDOW_MINUTES): the prediction log's lines
in the window, grouped by version and track, joined by request id with the outcomes
that have arrived, give the quality figures; their inputs against the version's
training reference give the drift scores. Both are stored per version, track and
window, replacing an earlier evaluation of the same window, so a retried or repeated
job leaves one row per figure. The files are read before any transaction starts; each
version and track is written in its own transaction with its audit events.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.models import ModelVersion
from monitoring.choices import DriftMethod
from monitoring.drift import DriftScore, category_drift, sample_drift
from monitoring.models import DriftReference, QualityResult
from monitoring.quality import forecasting_quality, recommendation_quality, segmentation_quality
from monitoring.services.records import drift_record
from monitoring.serving_logs import outcomes_read, predictions_read, served_features
from portal.audit.actors import Actor
from portal.audit.services import audit_record

# Categorical predictions whose distribution is watched (segments): scored as
# categories, not as numbers, and without Wasserstein (segments have no order).
CATEGORY_PREDICTIONS = {"segmentation": "segment"}
CATEGORY_METHODS = (DriftMethod.PSI, DriftMethod.JENSEN_SHANNON, DriftMethod.KL)


def drift_reference_store(
    *, version: ModelVersion, reference: dict[str, list[float]], actor: Actor
) -> list[DriftReference]:
    """Store a version's training reference, one row per feature (`pipelines.reference`
    gives the samples). A feature already stored is kept as it was: the reference of a
    version never changes. Refuses (ValidationError naming the feature) a sample that
    is not a list of finite numbers. Side effects: audit
    `monitoring.drift_reference_stored` with the features and their sample sizes, when
    anything new was stored.
    """
    clean: dict[str, list[float]] = {}
    for feature, values in reference.items():
        if not isinstance(values, list) or not all(
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and v == v
            and abs(v) != float("inf")
            for v in values
        ):
            raise ValidationError({feature: "A reference is a list of finite numbers."})
        clean[str(feature)[:100]] = [float(v) for v in values]
    with transaction.atomic():
        known = set(
            DriftReference.objects.filter(version=version).values_list("feature", flat=True)
        )
        new = [
            DriftReference(version=version, feature=f, values=v, count=len(v))
            for f, v in sorted(clean.items())
            if f not in known
        ]
        DriftReference.objects.bulk_create(new)
        if new:
            audit_record(
                action="monitoring.drift_reference_stored",
                actor=actor,
                object_type=version.AUDIT_OBJECT_TYPE,
                object_id=version.audit_id,
                payload={"features": {row.feature: row.count for row in new}},
            )
    return new


def quality_record(
    *,
    version: ModelVersion,
    track: str,
    window_start: datetime,
    window_end: datetime,
    figures: dict[str, float | None],
    sample_count: int,
    actor: Actor,
) -> list[QualityResult]:
    """Store a version's quality figures over one window (None: not enough data).
    Recording the same window again replaces its figures. Side effects: audit
    `monitoring.quality_recorded` with the window and the figures."""
    if window_end <= window_start:
        raise ValidationError({"window_end": "A window ends after it starts."})
    rows = []
    with transaction.atomic():
        for metric, value in sorted(figures.items()):
            row, _ = QualityResult.objects.update_or_create(
                version=version,
                track=track,
                metric=metric,
                window_start=window_start,
                window_end=window_end,
                defaults={
                    "value": value,
                    "sample_count": sample_count,
                    "computed_at": timezone.now(),
                },
            )
            rows.append(row)
        audit_record(
            action="monitoring.quality_recorded",
            actor=actor,
            object_type=version.AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={
                "track": track,
                "window_start": window_start.isoformat(),
                "window_end": window_end.isoformat(),
                "samples": sample_count,
                "figures": figures,
            },
        )
    return rows


@dataclass
class WindowReport:
    """What one evaluation did: (model, version, track) groups evaluated, and why some
    were not (unknown version, no training reference), with lines skipped as damaged."""

    start: datetime
    end: datetime
    evaluated: list[tuple[str, str, str]] = field(default_factory=list)
    unknown_versions: list[tuple[str, str]] = field(default_factory=list)
    without_reference: list[tuple[str, str]] = field(default_factory=list)
    skipped_lines: int = 0

    def summary(self) -> str:
        return (
            f"window {self.start.isoformat()} to {self.end.isoformat()}: "
            f"{len(self.evaluated)} evaluated, {len(self.unknown_versions)} unknown versions, "
            f"{len(self.without_reference)} without a training reference, "
            f"{self.skipped_lines} damaged lines skipped"
        )


def window_latest(*, now: datetime) -> tuple[datetime, datetime]:
    """The window the scheduled job evaluates at `now`: MONITORING_WINDOW_MINUTES long,
    ending at `now` rounded down to MONITORING_WINDOW_STEP_SECONDS (so two runs within
    one step evaluate the same window and replace, not add, its rows)."""
    step = settings.MONITORING_WINDOW_STEP_SECONDS
    end = datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=now.tzinfo)
    return end - timedelta(minutes=settings.MONITORING_WINDOW_MINUTES), end


def _drift_scores(
    *, kind: str, lines: list[dict[str, Any]], references: dict[str, list[float]]
) -> dict[str, list[DriftScore]]:
    current: dict[str, list[float]] = defaultdict(list)
    for line in lines:
        for name, value in served_features(kind, line["inputs"]).items():
            current[name].append(value)
    scores: dict[str, list[DriftScore]] = {}
    category = CATEGORY_PREDICTIONS.get(kind)
    for feature, values in references.items():
        if feature == "prediction" and category:
            served = Counter(
                str(line["prediction"].get(category))
                for line in lines
                if isinstance(line["prediction"], dict)
            )
            trained = Counter(str(int(v)) for v in values)
            scores[feature] = [
                category_drift(reference=dict(trained), current=dict(served), method=m)
                for m in CATEGORY_METHODS
            ]
        elif feature != "prediction":
            scores[feature] = [
                sample_drift(reference=values, current=current.get(feature, ()), method=m)
                for m in DriftMethod.values
            ]
    return scores


def _quality(kind: str, lines: list[dict[str, Any]], outcomes: dict[str, Any]):
    if kind == "segmentation":
        rows = [
            (served_features(kind, line["inputs"]), line["prediction"].get("segment"))
            for line in lines
            if isinstance(line["prediction"], dict)
        ]
        rows = [(f, s) for f, s in rows if f and isinstance(s, int)]
        return segmentation_quality([f for f, _ in rows], [s for _, s in rows]), len(rows)
    joined = [
        (line["prediction"], outcomes[line["request_id"]])
        for line in lines
        if line["request_id"] in outcomes
    ]
    if kind == "forecasting":
        return forecasting_quality(joined), len(joined)
    if kind == "recommendation":
        return recommendation_quality(joined), len(joined)
    return {}, 0


def window_evaluate(
    *,
    start: datetime,
    end: datetime,
    actor: Actor,
    now: datetime | None = None,
    prediction_root: Path | None = None,
    outcome_root: Path | None = None,
) -> WindowReport:
    """Evaluate every model's served predictions stamped in [start, end): quality from
    the outcomes that arrived by `now`, drift against each version's training
    reference. Lines of a version the portal does not know are left alone (reported).

    Side effects: `quality_record` and `drift_record` per version and track (rows
    replaced for the same window, audited).
    """
    if end <= start:
        raise ValidationError({"end": "A window ends after it starts."})
    now = now or timezone.now()
    prediction_root = Path(prediction_root or settings.MONITORING_PREDICTION_LOG_DIR)
    outcome_root = Path(outcome_root or settings.MONITORING_OUTCOME_DIR)
    report = WindowReport(start=start, end=end)
    if not prediction_root.is_dir():
        return report
    for folder in sorted(p for p in prediction_root.iterdir() if p.is_dir()):
        slug = folder.name
        read = predictions_read(root=prediction_root, model=slug, start=start, end=end)
        report.skipped_lines += read.skipped
        if not read.lines:
            continue
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for line in read.lines:
            groups[(str(line["version"]), str(line["track"]))].append(line)
        versions = {
            v.version: v
            for v in ModelVersion.objects.select_related("model").filter(
                model__slug=slug, version__in={number for number, _ in groups}
            )
        }
        outcomes = outcomes_read(root=outcome_root, model=slug, start=start, end=now)
        for (number, track), lines in sorted(groups.items()):
            version = versions.get(number)
            if version is None:
                report.unknown_versions.append((slug, number))
                continue
            kind = version.model.kind
            figures, joined = _quality(kind, lines, outcomes)
            if figures:
                quality_record(
                    version=version,
                    track=track,
                    window_start=start,
                    window_end=end,
                    figures=figures,
                    sample_count=joined,
                    actor=actor,
                )
            references = dict(
                DriftReference.objects.filter(version=version).values_list("feature", "values")
            )
            if not references:
                report.without_reference.append((slug, number))
            else:
                drift_record(
                    version=version,
                    track=track,
                    window_start=start,
                    window_end=end,
                    scores=_drift_scores(kind=kind, lines=lines, references=references),
                    actor=actor,
                )
            report.evaluated.append((slug, number, track))
    return report

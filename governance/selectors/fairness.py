"""What a version's evaluation measured about the groups it serves: the fairness
evidence a board decides on, read from the slice metrics the training pipeline stored
with the version (`ModelVersion.metric_slices`), never from text someone wrote.

Each kind of model is compared across the groups its data allows: forecasts (which
score no person) by category and, where the pipeline evaluates it, by region;
segmentation and recommendation (which profile customers) by region and by the
customers' activity band or segment.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from governance.choices import ModelKind
from governance.metrics import metric_label, metric_spec
from governance.models import ModelVersion

# kind -> (slice dimensions compared, the metrics compared in order of preference).
# The first metric every group of a dimension reports is the one compared.
FAIRNESS_SLICES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ModelKind.FORECASTING: (("region", "category"), ("mape", "wape", "mae")),
    ModelKind.SEGMENTATION: (("region", "age_band"), ("silhouette",)),
    ModelKind.RECOMMENDATION: (
        ("region", "age_band", "activity", "segment"),
        ("hit_rate_at_k", "hit_rate_at_10", "recall_at_k"),
    ),
}
# Metrics that are shares in [0, 1] although the kind's catalogue does not list them.
SHARES = {"wape", "hit_rate_at_k", "recall_at_k"}


@dataclass(frozen=True)
class FairnessMeasure:
    """One metric compared across the groups of one slice dimension.

    `groups` maps each group to its value; `worst`/`best` name the groups at either end
    (by the metric's direction); `gap` is best minus worst in the metric's own unit, in
    percentage points when `percent` (a share)."""

    dimension: str
    metric: str
    metric_label: str
    percent: bool
    groups: dict[str, float]
    worst: str
    best: str
    gap: float

    def _value(self, value: float) -> str:
        return f"{value * 100:.1f}%" if self.percent else f"{value:.4g}"

    @property
    def gap_text(self) -> str:
        """The gap as people read it: "5.6 points" for a share, "0.031" otherwise."""
        return f"{self.gap * 100:.1f} points" if self.percent else f"{self.gap:.4g}"

    @property
    def summary(self) -> str:
        """One sentence: "MAPE by category: from 9.5% (grocery) to 15.1% (apparel),
        a gap of 5.6 points"."""
        return (
            f"{self.metric_label} by {self.dimension.replace('_', ' ')}: from "
            f"{self._value(self.groups[self.best])} ({self.best}) to "
            f"{self._value(self.groups[self.worst])} ({self.worst}), a gap of {self.gap_text}"
        )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fairness_measures(*, version: ModelVersion) -> list[FairnessMeasure]:
    """The fairness comparisons the version's stored slices allow, in the order
    FAIRNESS_SLICES lists them; [] when the pipeline measured none (no slices, or each
    dimension has fewer than two groups reporting a compared metric). Reads no table:
    the version's own `metric_slices` only."""
    kind = version.model.kind
    dimensions, metrics = FAIRNESS_SLICES.get(kind, ((), ()))
    slices: Mapping[str, Any] = version.metric_slices or {}
    found = []
    for dimension in dimensions:
        groups = slices.get(dimension)
        if not isinstance(groups, dict) or len(groups) < 2:
            continue
        for metric in metrics:
            values = {
                str(group): float(row[metric])
                for group, row in groups.items()
                if isinstance(row, dict) and _number(row.get(metric))
            }
            if len(values) < 2 or len(values) < len(groups):
                continue
            spec = metric_spec(kind=kind, name=metric)
            lower_is_better = spec.lower_is_better if spec else metric not in SHARES
            ranked = sorted(values, key=values.__getitem__, reverse=not lower_is_better)
            best, worst = ranked[0], ranked[-1]
            found.append(
                FairnessMeasure(
                    dimension=dimension,
                    metric=metric,
                    metric_label=metric_label(kind=kind, name=metric),
                    percent=bool(spec.percent) if spec else metric in SHARES,
                    groups=values,
                    worst=worst,
                    best=best,
                    gap=abs(values[best] - values[worst]),
                )
            )
            break
    return found


def fairness_assessment_rows(*, version: ModelVersion, assessed_by: str) -> list[dict[str, str]]:
    """The model card's fairness assessment rows (data.assessments) written from what
    the pipeline measured: one row per comparison, its result the measured range and
    gap. `assessed_by` names who reads the measurement (the card's schema requires it)."""
    return [
        {
            "groups": f"{m.dimension.replace('_', ' ')}: {', '.join(sorted(m.groups))}",
            "metric": f"{m.metric_label} per {m.dimension.replace('_', ' ')}",
            "result": (
                f"measured on the held-out data: best {m.best}, worst {m.worst}, gap {m.gap_text}"
            ),
            "assessed_by": assessed_by,
            "assessed_on": version.metrics_updated_at.date().isoformat()
            if version.metrics_updated_at
            else "",
        }
        for m in fairness_measures(version=version)
    ]

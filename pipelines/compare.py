"""Comparing a new version with the one in production, on the same held-out data.

    current = evaluate_artifact("forecasting", production_uri, lake_root, new.data_version)
    better, why = is_better("forecasting", new.metrics, current, tolerance=0.0)

The rule per kind (`RULES`), on the primary metric:
- forecasting: MAPE, lower is better; the new version must also beat its seasonal-naive
  baseline (mape < baseline_mape).
- segmentation: silhouette, higher is better; no segment may hold under 2% of the
  customers (smallest_segment_share >= 0.02).
- recommendation: hit rate@k, higher is better; the new version must also beat the
  popularity baseline (hit_rate_at_k > baseline_hit_rate_at_k).

`tolerance` is the relative slack the new version is allowed on the primary metric:
0 means it must be strictly better; 0.02 accepts one less than 2% worse (of the production
value's magnitude). The guard is never relaxed.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.artifacts import load_artifact
from pipelines.kinds import KINDS, ComparisonRule, kind_for
from pipelines.kinds.base import compute_threads
from pipelines.kinds.segmentation import MIN_SEGMENT_SHARE
from pipelines.lake import open_snapshot
from pipelines.validation import ValidationFailed, validate_tables

RULES: dict[str, ComparisonRule] = {name: kind.comparison for name, kind in KINDS.items()}


def evaluate_artifact(
    model_kind: str,
    artifact_uri: str,
    lake_root: str | Path,
    snapshot_id: str | None,
    *,
    params: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """The metrics of a stored model on a snapshot's held-out data, computed exactly as
    a training run on that snapshot computes its own (same split, same baseline).

    `params`: the evaluation settings of the run being compared with (hold-out weeks,
    k); training hyperparameters in it are ignored. Raises ValidationFailed if the
    snapshot is unfit, ArtifactError if the artifact is missing or altered.
    """
    kind = kind_for(model_kind)
    evaluation_only = {k: v for k, v in (params or {}).items() if k in kind.evaluation_defaults}
    settings = kind.settings(evaluation_only)
    loaded = load_artifact(artifact_uri)
    stored_kind = loaded.metadata.get("model_kind")
    if stored_kind != kind.kind:
        raise ValueError(
            f"the artifact at {artifact_uri} holds a {stored_kind} model, not {kind.kind}"
        )
    snapshot = open_snapshot(root=lake_root, snapshot_id=snapshot_id)
    tables = snapshot.load([n for n in kind.tables if n in snapshot.tables], verify=True)
    problems = (
        kind.missing_inputs(tables)
        or validate_tables(tables, list(tables), partial=snapshot.source.get("kind") == "import")
        or kind.check(tables, settings)
    )
    if problems:
        raise ValidationFailed(problems)
    features = kind.features(tables, settings)
    with compute_threads():
        return kind.evaluate(loaded.model, features, settings).metrics


def is_better(
    model_kind: str,
    new_metrics: Mapping[str, float],
    current_metrics: Mapping[str, float] | None,
    tolerance: float = 0.0,
) -> tuple[bool, str]:
    """Whether the new version should go forward, and a sentence saying why.

    With no current metrics (nothing in production), the new version goes forward if
    it passes its guard.
    """
    kind = kind_for(model_kind)
    rule = kind.comparison
    if tolerance < 0:
        raise ValueError("tolerance cannot be negative")
    metric = rule.metric
    if metric not in new_metrics:
        return False, f"the new version has no {metric} metric"
    new = float(new_metrics[metric])
    guard_ok, guard_text = _guard(kind.kind, new_metrics)
    if not guard_ok:
        return False, f"{guard_text}: discarded whatever production does."
    if not current_metrics or metric not in current_metrics:
        return True, f"{metric} {new:.4g}; no production version to compare with; {guard_text}."
    current = float(current_metrics[metric])
    slack = tolerance * abs(current)
    if rule.higher_is_better:
        better, direction = new > current - slack, "higher is better"
    else:
        better, direction = new < current + slack, "lower is better"
    allowed = f", tolerance {tolerance:.1%}" if tolerance else ""
    verdict = "better" if better else "not better"
    return better, (
        f"{metric} {new:.4g} against {current:.4g} in production ({direction}{allowed}): "
        f"{verdict}; {guard_text}."
    )


def _guard(kind: str, metrics: Mapping[str, float]) -> tuple[bool, str]:
    if kind == "forecasting":
        if "baseline_mape" not in metrics:
            return False, "no baseline_mape to check against"
        ok = metrics["mape"] < metrics["baseline_mape"]
        relation = "beats" if ok else "does not beat"
        return ok, (
            f"MAPE {metrics['mape']:.4g} {relation} the seasonal-naive baseline's "
            f"{metrics['baseline_mape']:.4g}"
        )
    if kind == "recommendation":
        if "baseline_hit_rate_at_k" not in metrics:
            return False, "no baseline_hit_rate_at_k to check against"
        ok = metrics["hit_rate_at_k"] > metrics["baseline_hit_rate_at_k"]
        relation = "beats" if ok else "does not beat"
        return ok, (
            f"hit rate {metrics['hit_rate_at_k']:.4g} {relation} the popularity baseline's "
            f"{metrics['baseline_hit_rate_at_k']:.4g}"
        )
    smallest = metrics.get("smallest_segment_share")
    if smallest is None:
        return False, "no smallest_segment_share to check"
    ok = smallest >= MIN_SEGMENT_SHARE
    relation = "at least" if ok else "below"
    share = f"{smallest:.1%} of customers"
    return ok, f"the smallest segment holds {share}, {relation} {MIN_SEGMENT_SHARE:.0%}"

"""Reads of rollouts: the lists and one rollout's page (steps, analysis charts,
timeline), what serves each target of a model now, the canary thresholds."""

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from governance.choices import Target
from governance.rollouts.choices import ACTIVE_ROLLOUT_STATES, RolloutState
from governance.rollouts.models import CanaryPolicy, Rollout
from portal.audit.models import AuditEvent
from portal.audit.selectors import audit_events_for_object

# The measures the rollout page charts, stable against canary, per analysed step.
CHART_MEASURES: tuple[tuple[str, str], ...] = (
    ("error_rate", "Error rate"),
    ("p95_seconds", "p95 latency (s)"),
    ("p99_seconds", "p99 latency (s)"),
    ("prediction_mean", "Mean prediction"),
)
TIMELINE_LIMIT = 200


def rollouts_list(*, model: str = "", target: str = "", state: str = "") -> QuerySet[Rollout]:
    """Rollouts, newest first, filtered by model slug, target and state (empty: any)."""
    rollouts = Rollout.objects.select_related("model", "version", "stable_version")
    if model:
        rollouts = rollouts.filter(model__slug=model)
    if target:
        rollouts = rollouts.filter(target=target)
    if state:
        rollouts = rollouts.filter(state=state)
    return rollouts


def rollout_get(*, pk: int) -> Rollout:
    """One rollout with its steps; Http404 when there is none."""
    return get_object_or_404(rollouts_list().prefetch_related("step_records"), pk=pk)


def rollouts_active() -> QuerySet[Rollout]:
    return rollouts_list().filter(state__in=ACTIVE_ROLLOUT_STATES)


def rollouts_active_by_target(*, model_id: int) -> dict[str, Rollout]:
    """The model's active rollout per target (at most one each, a database constraint)."""
    return {r.target: r for r in rollouts_active().filter(model_id=model_id)}


def rollout_timeline(*, rollout: Rollout) -> list[AuditEvent]:
    """The rollout's audit events, oldest first (the last TIMELINE_LIMIT)."""
    events = audit_events_for_object(object_type="rollout", object_id=str(rollout.pk))
    return list(events[:TIMELINE_LIMIT])[::-1]


def rollout_chart(*, rollout: Rollout) -> dict[str, Any]:
    """The analysis charts' data, for a `json_script` block: per analysed step its label
    and result, and per measure the stable and canary values (None where Prometheus had
    none). Shape: {"steps": [str], "results": [str], "weights": [int], "measures":
    [{"key", "label", "stable": [float|None], "canary": [float|None]}], "thresholds"}."""
    analysed = [s for s in rollout.step_records.all() if s.analysis.get("measures")]
    measures = []
    for key, label in CHART_MEASURES:
        measures.append(
            {
                "key": key,
                "label": label,
                **{
                    track: [s.analysis["measures"].get(track, {}).get(key) for s in analysed]
                    for track in ("stable", "canary")
                },
            }
        )
    return {
        "steps": [f"step {s.index + 1} ({s.weight}%)" for s in analysed],
        "results": [s.result for s in analysed],
        "weights": [s.weight for s in analysed],
        "measures": measures,
        "thresholds": rollout.strategy.get("thresholds", {}),
    }


def canary_policies() -> list[tuple[str, str, CanaryPolicy | None]]:
    """(target, label, its CanaryPolicy or None when the settings' defaults apply), for
    every target."""
    found = {p.target: p for p in CanaryPolicy.objects.all()}
    return [(value, label, found.get(value)) for value, label in Target.choices]


def canary_policy_for(*, target: str) -> CanaryPolicy:
    """The target's thresholds, or an unsaved policy with the defaults."""
    return CanaryPolicy.objects.filter(target=target).first() or CanaryPolicy(target=target)


def rollouts_of_version(*, version_id: int) -> list[Rollout]:
    """Every rollout of one version, oldest first, with its steps (two queries)."""
    return list(
        rollouts_list()
        .filter(version_id=version_id)
        .prefetch_related("step_records")
        .order_by("created_at", "pk")
    )


def version_serving_since(*, version_id: int) -> tuple[Any, Any] | None:
    """(from, until) the version served production: from its first production rollout
    that succeeded to the next succeeded production rollout of another version of its
    model (until None while it still serves). None when it never served production."""
    first = (
        Rollout.objects.filter(
            version_id=version_id, target=Target.PRODUCTION, state=RolloutState.SUCCEEDED
        )
        .order_by("finished_at")
        .first()
    )
    if first is None or first.finished_at is None:
        return None
    following = (
        Rollout.objects.filter(
            model_id=first.model_id,
            target=Target.PRODUCTION,
            state=RolloutState.SUCCEEDED,
            finished_at__gt=first.finished_at,
        )
        .exclude(version_id=version_id)
        .order_by("finished_at")
        .first()
    )
    return first.finished_at, following.finished_at if following else None

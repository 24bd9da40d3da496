"""Reads of rollouts."""

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from governance.choices import Target
from governance.rollouts.choices import ACTIVE_ROLLOUT_STATES, RolloutState
from governance.rollouts.models import Rollout


def rollouts_list() -> QuerySet[Rollout]:
    return Rollout.objects.select_related("model", "version", "stable_version")


def rollout_get(*, pk: int) -> Rollout:
    """One rollout with its steps; Http404 when there is none."""
    return get_object_or_404(rollouts_list().prefetch_related("step_records"), pk=pk)


def rollouts_active() -> QuerySet[Rollout]:
    return rollouts_list().filter(state__in=ACTIVE_ROLLOUT_STATES)


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

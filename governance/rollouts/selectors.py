"""Reads of rollouts."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from governance.rollouts.choices import ACTIVE_ROLLOUT_STATES
from governance.rollouts.models import Rollout


def rollouts_list() -> QuerySet[Rollout]:
    return Rollout.objects.select_related("model", "version", "stable_version")


def rollout_get(*, pk: int) -> Rollout:
    """One rollout with its steps; Http404 when there is none."""
    return get_object_or_404(rollouts_list().prefetch_related("step_records"), pk=pk)


def rollouts_active() -> QuerySet[Rollout]:
    return rollouts_list().filter(state__in=ACTIVE_ROLLOUT_STATES)

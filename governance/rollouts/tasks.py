"""Celery tasks of rollouts: thin wrappers around governance.rollouts.services."""

import logging

from celery import shared_task

from governance.rollouts.models import Rollout
from governance.rollouts.services import (
    rollout_queue_tick,
    rollout_seconds_to_next_tick,
    rollout_tick,
    rollouts_sweep,
)

logger = logging.getLogger(__name__)


# acks_late and reject_on_worker_lost (the app's defaults, spelled out): a worker killed
# mid-step gives the message back and the next delivery resumes (rollout_tick is safe
# to repeat).
@shared_task(name="rollouts.tick", acks_late=True, reject_on_worker_lost=True)
def tick(rollout_id: int) -> str:
    """One turn of the rollout, then the next turn queued for when it is due."""
    if not Rollout.objects.filter(pk=rollout_id).exists():
        return f"no rollout {rollout_id}"
    rollout = rollout_tick(rollout_id=rollout_id)
    wait = rollout_seconds_to_next_tick(rollout=rollout)
    if wait is not None:
        rollout_queue_tick(rollout_id=rollout_id, countdown=wait)
    return f"rollout {rollout.pk}: {rollout.state} at {rollout.weight}%"


@shared_task(name="rollouts.sweep")
def sweep() -> str:
    """Tick the rollouts whose task was lost (beat: every minute)."""
    stuck = rollouts_sweep()
    for rollout_id in stuck:
        rollout_queue_tick(rollout_id=rollout_id)
    return f"{len(stuck)} rollout(s) ticked"

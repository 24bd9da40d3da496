"""Celery tasks of the review board: thin calls onto its services."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from governance.reviews.clouddeploy_outbox import (
    forward_backoff_seconds,
    rollout_answer_send,
    rollout_answers_retry,
)
from governance.reviews.services import reviews_expire
from portal.audit.actors import Actor


@shared_task(name="reviews.expire")
def expire() -> int:
    """Expire overdue reviews and lapsed approvals (idempotent: each review is checked
    again under its lock)."""
    return reviews_expire()


@shared_task(name="reviews.clouddeploy_approve", bind=True, acks_late=True, max_retries=None)
def clouddeploy_approve(self, outbox_id: int) -> str:
    """Send the board's answer in one outbox row to Cloud Deploy (at most once: the
    service checks the row and the rollout first). Retried with exponential backoff
    while Cloud Deploy is away; the service counts the attempts and marks the row
    failed after the last one, so Celery's own retry limit is off."""
    result = rollout_answer_send(outbox_id=outbox_id)
    if result.retry:
        raise self.retry(countdown=result.retry_in or forward_backoff_seconds(result.attempts))
    return result.state


@shared_task(name="reviews.clouddeploy_sweep")
def clouddeploy_sweep() -> str:
    """Send again the answers whose task was lost (pending, untried for 90 minutes:
    longer than the longest backoff). Failed answers wait for a person."""
    queued = rollout_answers_retry(
        actor=Actor.system("worker"),
        pending_before=timezone.now() - timedelta(minutes=90),
        include_failed=False,
    )
    return f"{len(queued)} answer(s) queued again"

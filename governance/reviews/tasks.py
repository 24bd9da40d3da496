"""Celery tasks of the review board: thin calls onto its services."""

from celery import shared_task

from governance.reviews.services import reviews_expire


@shared_task(name="reviews.expire")
def expire() -> int:
    """Expire overdue reviews and lapsed approvals (idempotent: each review is checked
    again under its lock)."""
    return reviews_expire()

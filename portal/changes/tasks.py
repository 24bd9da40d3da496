"""Celery tasks of governance change requests: thin calls onto its services."""

from celery import shared_task

from portal.changes.configuration import configuration_check
from portal.changes.services import changes_expire_due


@shared_task(name="changes.expire")
def expire() -> int:
    """Beat: expire undecided requests, and turn a changed signing-key set or password
    sign-in switch in the environment into a pending request."""
    expired = changes_expire_due()
    configuration_check()
    return expired

"""Reads for data subject requests: the privacy officer's queue and one request."""

from django.db.models import QuerySet
from django.utils import timezone

from datasubjects.choices import OPEN_STATES
from datasubjects.models import DataSubjectRequest
from portal.accounts.choices import Role
from portal.accounts.models import User


def requests_queue(*, state: str = "", open_only: bool = True) -> QuerySet[DataSubjectRequest]:
    """Requests by due date, soonest (and overdue) first; unverified ones never show."""
    requests = DataSubjectRequest.objects.select_related("assigned_to").exclude(
        verified_at__isnull=True
    )
    if state:
        requests = requests.filter(state=state)
    elif open_only:
        requests = requests.filter(state__in=OPEN_STATES)
    return requests.order_by("due_on", "created_at")


def request_is_overdue(request: DataSubjectRequest) -> bool:
    return bool(
        request.due_on and request.state in OPEN_STATES and request.due_on < timezone.localdate()
    )


def request_by_public_id(public_id: str) -> DataSubjectRequest | None:
    return (
        DataSubjectRequest.objects.select_related("assigned_to", "duplicate_of")
        .filter(public_id=public_id)
        .first()
    )


def privacy_officers() -> QuerySet[User]:
    return (
        User.objects.filter(
            is_active=True,
            role_grants__role=Role.PRIVACY_OFFICER,
            role_grants__revoked_at__isnull=True,
        )
        .distinct()
        .order_by("email")
    )

"""Reads for data subject requests: the privacy officer's queue and one request."""

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from datasubjects.choices import OPEN_STATES, REQUEST_AUDIT_TYPE
from datasubjects.models import DataSource, DataSubjectRequest, SourceTask
from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.audit.selectors import audit_events_for_object


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


def request_tasks(request: DataSubjectRequest) -> QuerySet[SourceTask]:
    return request.tasks.select_related("source").order_by("source__name", "action")


def sources_active() -> QuerySet[DataSource]:
    return DataSource.objects.filter(active=True).order_by("name")


def sources_all() -> QuerySet[DataSource]:
    return DataSource.objects.order_by("name")


def portal_records_for(*, subject_ref: str) -> dict[str, list[dict[str, Any]]]:
    """What the portal itself holds about a person: their requests and the audit
    events about them (pseudonymous: actions and times, no payloads)."""
    requests = list(
        DataSubjectRequest.objects.filter(subject_ref=subject_ref).order_by("created_at")
    )
    events = []
    for request in requests:
        events.extend(
            {
                "request": str(request.public_id),
                "action": event.action,
                "occurred_at": event.occurred_at.isoformat(),
            }
            for event in audit_events_for_object(
                object_type=REQUEST_AUDIT_TYPE, object_id=request.audit_id
            ).order_by("sequence")
        )
    return {
        "data_subject_requests": [
            {
                "request": str(request.public_id),
                "kind": request.kind,
                "state": request.state,
                "email": request.email,
                "filed_at": request.created_at.isoformat(),
                "due_on": request.due_on.isoformat() if request.due_on else None,
            }
            for request in requests
        ],
        "audit_events": events,
    }

"""Reads for data subject requests: the privacy officer's queue and one request."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from datasubjects.choices import (
    OPEN_STATES,
    PACKAGE_KINDS,
    REQUEST_AUDIT_TYPE,
    ConsentPurpose,
    RequestState,
    TaskAction,
    TaskState,
)
from datasubjects.models import (
    ConsentRecord,
    DataSource,
    DataSubjectRequest,
    SourceTask,
    Suppression,
    VersionTrainedOnSubject,
)
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


def request_by_pk(pk: int) -> DataSubjectRequest | None:
    return DataSubjectRequest.objects.filter(pk=pk).first()


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


@dataclass(frozen=True)
class PackageProgress:
    """Where an access or portability request's package stands, for the privacy
    officer: `done` of its `total` access tasks are done, `waiting` names the sources
    a person must record, `built_at` is set once the package is made."""

    done: int
    total: int
    waiting: tuple[str, ...]
    built_at: datetime | None

    @property
    def building(self) -> bool:
        """Every task is done and the package is on its way (a worker builds it)."""
        return self.built_at is None and self.total > 0 and self.done == self.total


def package_progress(
    *, request: DataSubjectRequest, tasks: list[SourceTask]
) -> PackageProgress | None:
    """The package's progress from the request's tasks (as `request_tasks` gives
    them, already read: no query); None for a kind without a package, or a request
    closed without one (refused, a duplicate) or not started yet."""
    if request.kind not in PACKAGE_KINDS:
        return None
    if not request.package_file and (
        request.state not in OPEN_STATES or request.state == RequestState.PENDING
    ):
        return None
    access = [task for task in tasks if task.action == TaskAction.ACCESS]
    return PackageProgress(
        done=sum(task.state == TaskState.DONE for task in access),
        total=len(access),
        waiting=tuple(
            task.source.name for task in access if task.state == TaskState.AWAITING_PERSON
        ),
        built_at=request.package_built_at if request.package_file else None,
    )


def sources_active() -> QuerySet[DataSource]:
    return DataSource.objects.filter(active=True).order_by("name")


def sources_all() -> QuerySet[DataSource]:
    return DataSource.objects.order_by("name")


def portal_records_for(*, subject_ref: str) -> dict[str, list[dict[str, Any]]]:
    """What the portal itself holds about a person: their requests, the audit events
    about them (pseudonymous: actions and times, no payloads) and their consent
    records."""
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
        "consent_records": [
            {
                "purpose": record.purpose,
                "state": "given" if record.given else "withdrawn",
                "source": record.source,
                "notice_version": record.notice_version,
                "recorded_at": record.recorded_at.isoformat(),
            }
            for record in ConsentRecord.objects.filter(subject_ref=subject_ref).order_by(
                "recorded_at", "pk"
            )
        ],
    }


# --- consent ledger and suppression list ---------------------------------------------------


def consent_current() -> QuerySet[ConsentRecord]:
    """Each person's newest record per purpose: their current consent state (a
    subquery per row, portable to SQLite; indexed by subject, purpose and time)."""
    newest = (
        ConsentRecord.objects.filter(
            subject_ref=OuterRef("subject_ref"), purpose=OuterRef("purpose")
        )
        .order_by("-recorded_at", "-pk")
        .values("pk")[:1]
    )
    return ConsentRecord.objects.filter(pk=Subquery(newest))


def consent_records(
    *,
    subject_ref: str = "",
    customer_key: str = "",
    purpose: str = "",
    given: bool | None = None,
    source: str = "",
) -> QuerySet[ConsentRecord]:
    """The ledger, newest first, filtered. A person is found by either key: the
    records under their address and those under any of their customer ids."""
    records = ConsentRecord.objects.select_related("request")
    if subject_ref or customer_key:
        person = Q()
        if subject_ref:
            person |= Q(subject_ref=subject_ref)
        if customer_key:
            person |= Q(customer_key=customer_key)
        records = records.filter(person)
    if purpose:
        records = records.filter(purpose=purpose)
    if given is not None:
        records = records.filter(given=given)
    if source:
        records = records.filter(source=source)
    return records.order_by("-recorded_at", "-pk")


def consent_state_for(*, subject_ref: str) -> dict[str, bool]:
    """{purpose: given} from the person's newest record per purpose (purposes with no
    record are absent)."""
    return {
        record.purpose: record.given for record in consent_current().filter(subject_ref=subject_ref)
    }


def suppressions_page(*, lifted: bool = False) -> QuerySet[Suppression]:
    """Active entries (or, with `lifted`, the lifted ones), newest first."""
    return (
        Suppression.objects.select_related("request")
        .filter(lifted_at__isnull=not lifted)
        .order_by("-created_at", "-pk")
    )


def suppressions_active() -> QuerySet[Suppression]:
    return Suppression.objects.filter(lifted_at__isnull=True)


def suppression_keys_by_purpose() -> dict[str, set[str]]:
    """The customer keys for each purpose of the pipelines' suppression list.

    - everyone on the suppression list (objection, restriction, erasure): all purposes;
    - consent to profiling withdrawn: profiling and training;
    - consent to personalisation withdrawn: personalisation and training.
    A person whose consent is withdrawn by address is known by the customer keys of
    their requests and of their consent records.
    """
    suppressed = set(suppressions_active().values_list("customer_key", flat=True))
    withdrawn = list(
        consent_current()
        .filter(given=False, purpose__in=[ConsentPurpose.PROFILING, ConsentPurpose.PERSONALISATION])
        .values_list("subject_ref", "purpose")
    )
    refs = {subject_ref for subject_ref, _ in withdrawn}
    # The keys each person is known by: their requests' and their consent records'.
    keys_of: dict[str, set[str]] = {ref: set() for ref in refs}
    for ref, keys in DataSubjectRequest.objects.filter(subject_ref__in=refs).values_list(
        "subject_ref", "customer_keys"
    ):
        keys_of[ref].update(keys or [])
    for ref, key in (
        ConsentRecord.objects.filter(subject_ref__in=refs)
        .exclude(customer_key="")
        .values_list("subject_ref", "customer_key")
    ):
        keys_of[ref].add(key)
    by_purpose: dict[str, set[str]] = {
        ConsentPurpose.PROFILING: set(),
        ConsentPurpose.PERSONALISATION: set(),
    }
    for subject_ref, purpose in withdrawn:
        by_purpose[purpose].update(keys_of[subject_ref])
    profiling = by_purpose[ConsentPurpose.PROFILING]
    personalisation = by_purpose[ConsentPurpose.PERSONALISATION]
    return {
        "training": suppressed | profiling | personalisation,
        "profiling": suppressed | profiling,
        "personalisation": suppressed | personalisation,
    }


def versions_trained_on_subjects(*, version_id: int) -> QuerySet[VersionTrainedOnSubject]:
    """The erasure requests whose person was in this version's training snapshot."""
    return (
        VersionTrainedOnSubject.objects.filter(version_id=version_id)
        .select_related("request")
        .order_by("-found_at")
    )

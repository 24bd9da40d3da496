"""Writes for data subject requests: filing, verifying the requester's address, the
lifecycle a privacy officer moves a request through, and the Art. 12(3) clock.

Every write locks the request row, changes it and records its audit event in one
transaction. The ledger names the request by its public id and the person by
`subject_ref`, a keyed hash of the e-mail address: pseudonymous ids only, so erasing
the person later leaves nothing readable in the chain.
"""

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from datasubjects.choices import (
    KIND_SUPPRESSIONS,
    MAX_EXTENSION_MONTHS,
    OPEN_STATES,
    PACKAGE_KINDS,
    REQUEST_AUDIT_TYPE,
    STATE_MOVES,
    ConsentPurpose,
    ConsentSource,
    RequestKind,
    RequestState,
)
from datasubjects.deadlines import dsar_due_date
from datasubjects.models import DataSubjectRequest
from datasubjects.permissions import may_handle_requests
from datasubjects.pseudonyms import subject_ref_for
from datasubjects.selectors import privacy_officers
from datasubjects.services.access import (
    PackageUnreadable,
    access_package_ensure,
    package_link_url,
)
from datasubjects.services.completion import completion_summary, unfinished_tasks
from datasubjects.services.consent import consent_record
from datasubjects.services.sources import source_tasks_create
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record

logger = logging.getLogger(__name__)

AUDIT_OBJECT_TYPE = REQUEST_AUDIT_TYPE
CODE_VALIDITY = timedelta(minutes=10)
CODE_MAX_ATTEMPTS = 3
STATUS_LINK_SALT = "datasubjects.status"


class RequestRefused(PermissionDenied):
    """A lifecycle step is not allowed now; `code` says which rule refused it."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _code_hash(request: DataSubjectRequest, code: str) -> str:
    return salted_hmac("datasubjects.code", f"{request.public_id}:{code}").hexdigest()


def _new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def _audit(
    request: DataSubjectRequest,
    action: str,
    actor: Actor,
    payload: dict | None = None,
    client_ip: str | None = None,
) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=request.audit_id,
        payload={"kind": request.kind, "subject": request.subject_ref, **(payload or {})},
        client_ip=client_ip,
    )


def _mail_on_commit(*, to: str, subject: str, template: str, context: dict) -> None:
    body = render_to_string(template, context)

    def send() -> None:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])

    transaction.on_commit(send)


def request_status_token(*, request: DataSubjectRequest) -> str:
    """A signed, timestamped token naming the request; the status page accepts it for
    DSAR_STATUS_LINK_DAYS days."""
    return signing.dumps(str(request.public_id), salt=STATUS_LINK_SALT)


def request_status_url(*, request: DataSubjectRequest) -> str:
    token = request_status_token(request=request)
    return settings.PORTAL_BASE_URL + reverse("datasubjects:public_status", args=[token])


def _send_code(request: DataSubjectRequest, now: datetime) -> None:
    code = _new_code()
    request.code_hash = _code_hash(request, code)
    request.code_sent_at = now
    request.code_attempts = 0
    _mail_on_commit(
        to=request.code_recipient,
        subject="Your verification code",
        template="datasubjects/email/code.txt",
        context={"code": code, "request": request, "minutes": CODE_VALIDITY.seconds // 60},
    )


def _queue_suppression(request: DataSubjectRequest) -> None:
    """After commit, have a worker find the person's customer ids and (for an
    objection, restriction or erasure) put them on the suppression list; for a consent
    withdrawal, finding the ids is what lets the list name the person."""
    from datasubjects.tasks import suppress_subject  # noqa: PLC0415 -- task

    transaction.on_commit(lambda: suppress_subject.delay(request.pk))


@dataclass(frozen=True)
class FiledRequest:
    request: DataSubjectRequest


def request_file(
    *,
    kind: str,
    email: str,
    details: str = "",
    agent_name: str = "",
    agent_email: str = "",
    agent_proof: UploadedFile | None = None,
    consent_purposes: list[str] | None = None,
    client_ip: str | None = None,
) -> FiledRequest:
    """File a request from the public form, unverified until the code comes back.

    The address is not looked up anywhere: whether the portal knows the person or not,
    filing does the same work and gives the same answer (no enumeration).

    Side effects: creates the request in `identity_unverified`; e-mails a six-digit
    code (valid CODE_VALIDITY) to the subject, or to the agent when filed on someone's
    behalf; records `dsr.filed`.
    """
    if kind not in RequestKind.values:
        raise ValidationError({"kind": "Choose one of the listed rights."})
    if agent_email and not agent_proof:
        raise ValidationError({"agent_proof": "Attach the proof that you may act for this person."})
    purposes = sorted(set(consent_purposes or []))
    if set(purposes) - set(ConsentPurpose.values):
        raise ValidationError({"consent_purposes": "Choose among the listed purposes."})
    if kind == RequestKind.CONSENT_WITHDRAWAL and not purposes:
        # Withdrawing is as easy as giving: no choice made means every purpose.
        purposes = sorted(ConsentPurpose.values)
    email = email.strip().lower()
    with transaction.atomic():
        request = DataSubjectRequest(
            kind=kind,
            email=email,
            subject_ref=subject_ref_for(email),
            details=details,
            agent_name=agent_name,
            agent_email=agent_email.strip().lower(),
            consent_purposes=purposes if kind == RequestKind.CONSENT_WITHDRAWAL else [],
        )
        if agent_proof is not None:
            request.agent_proof = agent_proof
        _send_code(request, timezone.now())
        request.save()
        _audit(
            request,
            "dsr.filed",
            Actor.anonymous(),
            {"on_behalf": request.on_behalf},
            client_ip=client_ip,
        )
    return FiledRequest(request=request)


class VerifyOutcome:
    VERIFIED = "verified"
    WRONG = "wrong"  # attempts remain
    NEW_CODE_SENT = "new_code_sent"  # expired, or the last attempt failed
    ALREADY_VERIFIED = "already_verified"


def request_verify(*, request: DataSubjectRequest, code: str, client_ip: str | None = None) -> str:
    """Check the code the requester typed.

    A code is valid for CODE_VALIDITY and CODE_MAX_ATTEMPTS tries; an expired code or
    a third wrong one sends a fresh code (and the old one stops working).

    Side effects: on success the request becomes `pending`, is received today and gets
    its Art. 12(3) due date (the EDPB counts the month from when the controller can
    identify the requester), `dsr.verified` is recorded and the requester is e-mailed
    the status link. A failure counts the attempt; a new code records `dsr.code_resent`.
    """
    now = timezone.now()
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if request.verified_at is not None:
            return VerifyOutcome.ALREADY_VERIFIED
        expired = request.code_sent_at is None or now - request.code_sent_at > CODE_VALIDITY
        if (
            not expired
            and request.code_hash
            and hmac.compare_digest(request.code_hash, _code_hash(request, code.strip()))
        ):
            request.verified_at = now
            request.code_hash = ""
            request.state = RequestState.PENDING
            request.received_on = timezone.localdate(now)
            request.due_on = dsar_due_date(received_on=request.received_on)
            request.save()
            _audit(
                request,
                "dsr.verified",
                Actor.anonymous(),
                {"due_on": request.due_on.isoformat()},
                client_ip=client_ip,
            )
            if request.kind == RequestKind.CONSENT_WITHDRAWAL:
                # Art. 7(3): the withdrawal takes effect now, not when an officer acts.
                consent_record(
                    email=request.email,
                    purposes=request.consent_purposes or list(ConsentPurpose.values),
                    given=False,
                    source=ConsentSource.WITHDRAWAL_REQUEST,
                    actor=Actor.anonymous(),
                    request=request,
                )
                _queue_suppression(request)
            _mail_on_commit(
                to=request.code_recipient,
                subject="We have received your request",
                template="datasubjects/email/received.txt",
                context={"request": request, "status_url": request_status_url(request=request)},
            )
            return VerifyOutcome.VERIFIED
        request.code_attempts += 1
        if expired or request.code_attempts >= CODE_MAX_ATTEMPTS:
            _send_code(request, now)
            request.save()
            _audit(
                request,
                "dsr.code_resent",
                Actor.anonymous(),
                {"why": "expired" if expired else "attempts"},
                client_ip=client_ip,
            )
            return VerifyOutcome.NEW_CODE_SENT
        request.save(update_fields=["code_attempts", "updated_at"])
        return VerifyOutcome.WRONG


def request_code_resend(*, request: DataSubjectRequest, client_ip: str | None = None) -> None:
    """Send a fresh code for an unverified request (the old one stops working).

    Side effects: e-mails the code, records `dsr.code_resent`.
    """
    with transaction.atomic():
        request = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if request.verified_at is not None:
            return
        _send_code(request, timezone.now())
        request.save()
        _audit(request, "dsr.code_resent", Actor.anonymous(), {"why": "asked"}, client_ip)


# --- the privacy officer's side -----------------------------------------------------------


def _lock_for_handling(request: DataSubjectRequest, user: User) -> DataSubjectRequest:
    if not may_handle_requests(user):
        raise RequestRefused("Only privacy officers handle requests.", code="not_privacy_officer")
    return DataSubjectRequest.objects.select_for_update().get(pk=request.pk)


def _refuse_wrong_move(request: DataSubjectRequest, state: str) -> None:
    if state not in STATE_MOVES[request.state]:
        raise RequestRefused(
            f"A request that is {request.get_state_display().lower()} cannot become "
            f"{RequestState(state).label.lower()}.",
            code="wrong_state",
        )


def _move(request: DataSubjectRequest, state: str) -> str:
    _refuse_wrong_move(request, state)
    previous = request.state
    request.state = state
    if state in (RequestState.COMPLETED, RequestState.REFUSED, RequestState.DUPLICATE):
        request.closed_at = timezone.now()
    return previous


def request_assign(
    *, request: DataSubjectRequest, assignee: User, user: User
) -> DataSubjectRequest:
    """Give a request to a privacy officer.

    Side effects: sets `assigned_to`; records `dsr.assigned` (the assignee's user id).
    """
    if not may_handle_requests(assignee):
        raise ValidationError({"assignee": "Requests go to privacy officers only."})
    with transaction.atomic():
        request = _lock_for_handling(request, user)
        request.assigned_to = assignee
        request.save(update_fields=["assigned_to", "updated_at"])
        _audit(request, "dsr.assigned", user.audit_actor(), {"assignee": assignee.pk})
    return request


def request_set_state(
    *, request: DataSubjectRequest, state: str, user: User, note: str = ""
) -> DataSubjectRequest:
    """Move a request to in progress, awaiting input or completed.

    Refusal and duplicates have their own services (they need a reason or an original).
    Side effects: changes the state; records `dsr.state_changed`; starting an access,
    portability or erasure request creates one task per active data source and queues
    them (`source_tasks_create`). Completing one tells the requester (Arts. 12(3),
    19) and records `dsr.completion_notified`: an access or portability request
    e-mails a download link to its package that expires after
    DSAR_PACKAGE_LINK_HOURS (building the package first if no worker has yet,
    `access_package_ensure`); any other kind e-mails what was done.

    RequestRefused when completing a request some source task of which is not done
    (code `unfinished_tasks`, naming the sources: completing an erasure drops the
    customer ids those tasks need; a task a source cannot finish is closed by a
    privacy officer recording why, `source_task_record_manual`, first), or an access
    or portability request whose package cannot be built (code `package_failed`,
    saying why); nothing changes then.
    """
    if state in (RequestState.REFUSED, RequestState.DUPLICATE):
        raise ValidationError({"state": "Use refuse or close as duplicate."})
    with transaction.atomic():
        request = _lock_for_handling(request, user)
        if state == RequestState.COMPLETED:
            _refuse_wrong_move(request, state)
            _refuse_unfinished(request)
            _ensure_package(request)
        previous = _move(request, state)
        request.save()
        if state == RequestState.IN_PROGRESS:
            source_tasks_create(request=request, actor=user.audit_actor())
            if request.kind in KIND_SUPPRESSIONS:
                _queue_suppression(request)
        if state == RequestState.COMPLETED and request.kind == RequestKind.ERASURE:
            # The sources are erased: the ids go; their keyed hashes stay listed.
            request.customer_ids_sealed = ""
            request.save(update_fields=["customer_ids_sealed", "updated_at"])
        _audit(
            request,
            "dsr.state_changed",
            user.audit_actor(),
            {"from": previous, "to": state, "note": note[:500]},
        )
        if state == RequestState.COMPLETED:
            _mail_completed(request, user.audit_actor())
    return request


def _ensure_package(request: DataSubjectRequest) -> None:
    """Have the access or portability request's package built (a worker normally did
    it when the last task was done), or refuse its completion saying why."""
    if request.kind not in PACKAGE_KINDS:
        return
    try:
        access_package_ensure(request=request)
    except PackageUnreadable as error:
        raise RequestRefused(
            f"The access package could not be built: {error}. The request cannot be "
            "completed without it (the requester would receive nothing): restore that "
            "file, then complete the request.",
            code="package_failed",
        ) from error
    except OSError as error:
        raise RequestRefused(
            f"The access package could not be written ({error.strerror or error!r}). The request "
            "cannot be completed without it: try again once the disk is fixed.",
            code="package_failed",
        ) from error
    if not request.package_file:
        # Unreachable while every task is done and the request open; said plainly
        # rather than completing a request its requester would hear nothing of.
        raise RequestRefused(
            "The access package has not been built, and the request cannot be completed "
            "without it.",
            code="package_failed",
        )


def _refuse_unfinished(request: DataSubjectRequest) -> None:
    unfinished = unfinished_tasks(request=request)
    if unfinished:
        names = ", ".join(
            f"{task.source.name} ({task.get_state_display().lower()})" for task in unfinished
        )
        raise RequestRefused(
            f"Some sources are not done: {names}. Wait for them, or record for each why "
            "it is closed without its connector, then complete the request.",
            code="unfinished_tasks",
        )


def _mail_completed(request: DataSubjectRequest, actor: Actor) -> None:
    """E-mail the requester what was done (Art. 12(3); Art. 19 for erasure,
    rectification and restriction): per source the records found, erased or kept
    under a legal hold with its Art. 17(3) exemption, and the status link; for an
    access or portability request, first the link to download the package (it expires
    after DSAR_PACKAGE_LINK_HOURS). Records `dsr.completion_notified` (counts only)."""
    sources = completion_summary(request=request)
    package = request.kind in PACKAGE_KINDS
    _mail_on_commit(
        to=request.code_recipient,
        subject=("Your personal data is ready to download: " if package else "")
        + f"Your {request.get_kind_display().split(' (')[0].lower()} request is complete",
        template="datasubjects/email/completed.txt",
        context={
            "request": request,
            "sources": sources,
            "suppressions": request.suppressions.filter(lifted_at__isnull=True).count(),
            "purposes": [ConsentPurpose(p).label for p in request.consent_purposes],
            "status_url": request_status_url(request=request),
            "package_url": package_link_url(request=request) if package else "",
            "hours": settings.DSAR_PACKAGE_LINK_HOURS,
        },
    )
    _audit(
        request,
        "dsr.completion_notified",
        actor,
        {
            "sources": len(sources),
            "rows_changed": sum(s.rows_changed or 0 for s in sources),
            "rows_held": sum(s.rows_held for s in sources),
            "holds": sorted({why for s in sources for why in s.holds.values()}),
        },
    )


def request_extend(
    *, request: DataSubjectRequest, months: int, reason: str, user: User
) -> DataSubjectRequest:
    """Extend the deadline once, by one or two further months (Art. 12(3)).

    Allowed only while the first month runs (the requester must be told within it),
    only once, and only with a reason.

    Side effects: sets `extended_months`, `due_on`, `extension_reason`; e-mails the
    requester the new date and the reason; records `dsr.extended`.
    """
    errors = {}
    if months not in range(1, MAX_EXTENSION_MONTHS + 1):
        errors["months"] = f"Extend by 1 to {MAX_EXTENSION_MONTHS} months."
    if not reason.strip():
        errors["reason"] = "Say why the request needs longer (the requester is told)."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        request = _lock_for_handling(request, user)
        if request.state not in OPEN_STATES:
            raise RequestRefused("Only an open request can be extended.", code="wrong_state")
        if request.extended_months:
            raise RequestRefused("The deadline has been extended already.", code="extended")
        first_due = dsar_due_date(received_on=request.received_on)
        if timezone.localdate() > first_due:
            raise RequestRefused(
                "The first month has run out: an extension had to be decided within it.",
                code="first_month_over",
            )
        request.extended_months = months
        request.extension_reason = reason.strip()
        request.extended_at = timezone.now()
        request.due_on = dsar_due_date(received_on=request.received_on, extension_months=months)
        request.overdue_alerted_at = None
        request.reminder_sent_at = None
        request.save()
        _audit(
            request,
            "dsr.extended",
            user.audit_actor(),
            {"months": months, "due_on": request.due_on.isoformat(), "reason": reason[:500]},
        )
        _mail_on_commit(
            to=request.code_recipient,
            subject="We need longer to answer your request",
            template="datasubjects/email/extended.txt",
            context={"request": request, "status_url": request_status_url(request=request)},
        )
    return request


def request_refuse(*, request: DataSubjectRequest, reason: str, user: User) -> DataSubjectRequest:
    """Refuse a request (Art. 12(5): manifestly unfounded or excessive), with a reason.

    Side effects: the request becomes `refused`; the requester is e-mailed the reason
    and their right to complain to a supervisory authority; records `dsr.refused`.
    """
    if not reason.strip():
        raise ValidationError({"reason": "A refusal needs its reason (the requester is told)."})
    with transaction.atomic():
        request = _lock_for_handling(request, user)
        _move(request, RequestState.REFUSED)
        request.refusal_reason = reason.strip()
        request.save()
        _audit(request, "dsr.refused", user.audit_actor(), {"reason": reason[:500]})
        _mail_on_commit(
            to=request.code_recipient,
            subject="Your request has been refused",
            template="datasubjects/email/refused.txt",
            context={"request": request},
        )
    return request


def request_close_duplicate(
    *, request: DataSubjectRequest, original: DataSubjectRequest, user: User
) -> DataSubjectRequest:
    """Close a request as a duplicate of an earlier one by the same person.

    Side effects: the request becomes `duplicate`; records `dsr.closed_duplicate`;
    e-mails the requester that it is closed and under which request theirs is
    answered (Art. 12(4): a request not acted on is told so), with its status link.
    """
    if original.pk == request.pk or original.subject_ref != request.subject_ref:
        raise ValidationError({"original": "Choose another request by the same person."})
    with transaction.atomic():
        request = _lock_for_handling(request, user)
        _move(request, RequestState.DUPLICATE)
        request.duplicate_of = original
        request.save()
        _audit(request, "dsr.closed_duplicate", user.audit_actor(), {"original": original.audit_id})
        _mail_on_commit(
            to=request.code_recipient,
            subject="Your request is closed as a repeat of an earlier one",
            template="datasubjects/email/duplicate.txt",
            context={
                "request": request,
                "original": original,
                "status_url": request_status_url(request=request),
            },
        )
    return request


@dataclass(frozen=True)
class DeadlineSweep:
    reminded: int
    overdue: int


def requests_deadline_sweep(*, reminder_days: int | None = None) -> DeadlineSweep:
    """Remind the privacy officers of requests due soon and raise overdue ones.

    Each request is reminded once and alerted once (an extension re-arms both).
    Side effects: e-mails the assignee (or every privacy officer); records
    `dsr.deadline_reminder` and `dsr.overdue`.
    """
    days = settings.DSAR_REMINDER_DAYS if reminder_days is None else reminder_days
    today = timezone.localdate()
    reminded = overdue = 0
    system = Actor.system("datasubjects.deadlines")
    open_requests = DataSubjectRequest.objects.filter(state__in=OPEN_STATES)
    for pk in open_requests.filter(due_on__lt=today, overdue_alerted_at__isnull=True).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            request = DataSubjectRequest.objects.select_for_update().get(pk=pk)
            if request.overdue_alerted_at or request.state not in OPEN_STATES:
                continue
            request.overdue_alerted_at = timezone.now()
            request.save(update_fields=["overdue_alerted_at", "updated_at"])
            _audit(request, "dsr.overdue", system, {"due_on": request.due_on.isoformat()})
            _officers_mail(request, "overdue")
            overdue += 1
    soon = today + timedelta(days=days)
    for pk in open_requests.filter(
        due_on__gte=today, due_on__lte=soon, reminder_sent_at__isnull=True
    ).values_list("pk", flat=True):
        with transaction.atomic():
            request = DataSubjectRequest.objects.select_for_update().get(pk=pk)
            if request.reminder_sent_at or request.state not in OPEN_STATES:
                continue
            request.reminder_sent_at = timezone.now()
            request.save(update_fields=["reminder_sent_at", "updated_at"])
            _audit(request, "dsr.deadline_reminder", system, {"due_on": request.due_on.isoformat()})
            _officers_mail(request, "reminder")
            reminded += 1
    return DeadlineSweep(reminded=reminded, overdue=overdue)


def _officers_mail(request: DataSubjectRequest, what: str) -> None:
    recipients = (
        [request.assigned_to.email]
        if request.assigned_to_id
        else [officer.email for officer in privacy_officers()]
    )
    if not recipients:
        logger.warning("no privacy officer to tell about request %s", request.audit_id)
        return
    subject = (
        "A data subject request is overdue"
        if what == "overdue"
        else f"A data subject request is due on {request.due_on:%d %B %Y}"
    )
    body = render_to_string(
        "datasubjects/email/officers.txt",
        {
            "request": request,
            "what": what,
            "url": settings.PORTAL_BASE_URL
            + reverse("datasubjects:request_detail", args=[request.public_id]),
        },
    )
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients))

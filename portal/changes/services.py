"""Writes for governance change requests: propose, approve, reject, expire.

Lock order (the portal's one order): the request's row first, then the rows the
change touches (the kind's `apply` locks them), the audit chain head last. Two admins
approving the same request at once therefore queue on the request's row; the second
finds it no longer pending and is refused, so a change takes effect once.

Who decides: an active portal admin who is neither the proposer nor someone the
change is about. On an installation with fewer than two portal admins nobody could,
so one operator with shell access on the server may approve instead
(`manage.py governance_change approve`); at any time two distinct operators together
may (break-glass), which is flagged on the request and in the ledger.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from portal.accounts.choices import BOARD_ROLES, Role
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest
from portal.changes.registry import change_kind_get, change_kind_label
from portal.notify.choices import EventType
from portal.notify.services import notification_publish
from portal.security.services import domain_refusal_record

AUDIT_OBJECT_TYPE = "change_request"
OPERATOR_NAME_MAX = 40
OPERATOR_REASON_MAX = 500


@dataclass(frozen=True)
class OperatorSignoff:
    """An operator on the server approving from the command line, with their reason."""

    name: str
    reason: str

    def actor(self) -> Actor:
        return Actor.system(f"operator:{self.name}")

    def errors(self) -> dict[str, str]:
        """What is wrong with this sign-off, by field (empty: nothing): the name is 1 to
        OPERATOR_NAME_MAX characters without a colon, the reason is given and at most
        OPERATOR_REASON_MAX characters."""
        errors: dict[str, str] = {}
        if not self.name.strip() or len(self.name) > OPERATOR_NAME_MAX or ":" in self.name:
            errors["operator"] = (
                f"An operator name is 1 to {OPERATOR_NAME_MAX} characters, no colon."
            )
        if not self.reason.strip():
            errors["reason"] = "Each operator gives a reason."
        elif len(self.reason) > OPERATOR_REASON_MAX:
            errors["reason"] = f"A reason is at most {OPERATOR_REASON_MAX} characters."
        return errors


def actor_ref(actor: Actor) -> str:
    return f"{actor.type}:{actor.id}" if actor.id else str(actor.type)


def change_ttl() -> timedelta:
    return timedelta(hours=settings.GOVERNANCE_CHANGE_TTL_HOURS)


def board_and_admins() -> list[User]:
    """Everyone told about governance changes: the board and the portal admins."""
    return list(
        User.objects.filter(
            is_active=True,
            role_grants__revoked_at__isnull=True,
            role_grants__role__in=[*BOARD_ROLES, Role.PORTAL_ADMIN],
        )
        .distinct()
        .order_by("pk")
    )


def _change_url(change: ChangeRequest) -> str:
    return settings.PORTAL_BASE_URL + reverse("changes:change_detail", args=[change.pk])


def governance_event_publish(
    *, event_type: str, event_id: str, summary: str, payload: dict[str, Any], actor: Actor
) -> None:
    """E-mail the board and the admins (and tell subscribed webhooks) about a governance
    change; call inside the change's transaction."""
    notification_publish(
        event_type=event_type,
        event_id=event_id,
        summary=summary,
        payload=payload,
        email_recipients=board_and_admins(),
        actor=actor,
    )


def _notify(change: ChangeRequest, *, event_type: str, summary: str, actor: Actor) -> None:
    governance_event_publish(
        event_type=event_type,
        event_id=f"change-{change.pk}-{change.state}",
        summary=summary,
        payload={"change": change.pk, "kind": change.kind, "url": _change_url(change)},
        actor=actor,
    )


def change_propose(
    *,
    kind: str,
    subject_type: str,
    subject_id: str,
    summary: str,
    before: dict[str, Any],
    after: dict[str, Any],
    subject_user_ids: list[int] | None = None,
    proposed_by: User | None,
    actor: Actor,
    reason: str = "",
    client_ip: str | None = None,
) -> ChangeRequest:
    """Record a change that waits for a second person; nothing else changes.

    Refuses (ValidationError) a second pending request for the same subject. Side
    effects: a ChangeRequest (pending, expiring after GOVERNANCE_CHANGE_TTL_HOURS),
    audit `change_request.proposed` with before and after, and an e-mail to the board
    and the admins (`governance.change_proposed`).
    """
    change_kind_get(kind)  # an unknown kind could never be applied
    now = timezone.now()
    try:
        with transaction.atomic():
            _expire_overdue(kind=kind, subject_id=subject_id, now=now)
            change = ChangeRequest.objects.create(
                kind=kind,
                subject_type=subject_type,
                subject_id=subject_id,
                summary=summary[:300],
                before=before,
                after=after,
                subject_user_ids=sorted(set(subject_user_ids or [])),
                proposed_by=proposed_by,
                proposed_by_actor=actor_ref(actor),
                proposal_reason=reason[:500],
                created_at=now,
                expires_at=now + change_ttl(),
            )
            audit_record(
                action="change_request.proposed",
                actor=actor,
                object_type=AUDIT_OBJECT_TYPE,
                object_id=change.pk,
                payload={
                    "kind": kind,
                    "subject": f"{subject_type}:{subject_id}",
                    "before": before,
                    "after": after,
                    "reason": reason[:500],
                    "expires_at": change.expires_at.isoformat(),
                },
                client_ip=client_ip,
            )
            _notify(
                change,
                event_type=EventType.GOVERNANCE_CHANGE_PROPOSED,
                summary=f"Waiting for a second admin: {change.summary}",
                actor=actor,
            )
    except IntegrityError:
        raise ValidationError(
            {"change": "A change of this is already waiting for a decision: decide that one first."}
        ) from None
    return change


def _expire_overdue(*, kind: str, subject_id: str, now: Any) -> None:
    for change in ChangeRequest.objects.select_for_update().filter(
        kind=kind, subject_id=subject_id, state=ChangeState.PENDING, expires_at__lte=now
    ):
        _expire_one(change, now=now)


def _locked_pending(change: ChangeRequest) -> ChangeRequest:
    """The request's row, locked; ValidationError unless it still waits for a decision."""
    locked = ChangeRequest.objects.select_for_update().get(pk=change.pk)
    if locked.state == ChangeState.PENDING and locked.expires_at <= timezone.now():
        _expire_one(locked, now=timezone.now())
    if locked.state != ChangeState.PENDING:
        raise ValidationError(
            {"change": f"This change is already {locked.get_state_display().lower()}."}
        )
    return locked


def change_refusal_for(*, change: ChangeRequest, user: User) -> str | None:
    """Why `user` may not approve `change`, or None if they may."""
    if not (user.is_active and user.has_role(Role.PORTAL_ADMIN)):
        return "Only a portal admin approves governance changes."
    if change.proposed_by_id == user.pk:
        return "You proposed this change: another portal admin must approve it."
    if user.pk in change.subject_user_ids:
        return "This change is about you: another portal admin must approve it."
    return None


def _apply_and_record(
    change: ChangeRequest,
    *,
    actor: Actor,
    decided_by: User | None,
    reason: str,
    break_glass: bool,
    operators: list[OperatorSignoff],
    client_ip: str | None,
) -> ChangeRequest:
    change_kind_get(change.kind).apply(change=change, actor=actor)
    change.state = ChangeState.APPROVED
    change.decided_by = decided_by
    change.decided_by_actor = ", ".join(actor_ref(op.actor()) for op in operators) or actor_ref(
        actor
    )
    change.decided_at = timezone.now()
    change.decision_reason = reason[:1000]
    change.break_glass = break_glass
    change.save(
        update_fields=[
            "state",
            "decided_by",
            "decided_by_actor",
            "decided_at",
            "decision_reason",
            "break_glass",
        ]
    )
    payload: dict[str, Any] = {
        "kind": change.kind,
        "subject": f"{change.subject_type}:{change.subject_id}",
        "proposed_by": change.proposed_by_actor,
        "after": change.after,
        "reason": reason[:1000],
        "break_glass": break_glass,
    }
    if operators:
        payload["operators"] = [{"name": op.name, "reason": op.reason[:500]} for op in operators]
    if break_glass:
        audit_record(
            action="change_request.break_glass",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=change.pk,
            payload=payload,
        )
    audit_record(
        action="change_request.approved",
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=change.pk,
        payload=payload,
        client_ip=client_ip,
    )
    _notify(
        change,
        event_type=EventType.GOVERNANCE_CHANGE_DECIDED,
        summary=("BREAK-GLASS " if break_glass else "") + f"Approved: {change.summary}",
        actor=actor,
    )
    return change


def change_approve(
    *, change: ChangeRequest, approved_by: User, reason: str = "", client_ip: str | None = None
) -> ChangeRequest:
    """A second portal admin approves: the change takes effect now, in this transaction.

    Refused (ValidationError) to the proposer, to anyone the change is about, to
    anyone but an active portal admin (these three counted as a `domain.four_eyes`
    refusal, portal.security), and when the request is no longer pending or what it
    changes moved on since it was proposed. Side effects: the kind's change
    and its own audit event, audit `change_request.approved`, e-mail to the board.
    """
    with transaction.atomic():
        locked = _locked_pending(change)
        refusal = change_refusal_for(change=locked, user=approved_by)
        if not refusal:
            return _apply_and_record(
                locked,
                actor=approved_by.audit_actor(),
                decided_by=approved_by,
                reason=reason,
                break_glass=False,
                operators=[],
                client_ip=client_ip,
            )
    # A four-eyes violation is a refusal like any other (counted once the lock is gone).
    domain_refusal_record(
        code="four_eyes",
        reason=refusal,
        actor=approved_by.audit_actor(),
        object_type=AUDIT_OBJECT_TYPE,
        object_id=change.pk,
        client_ip=client_ip,
    )
    raise ValidationError({"change": refusal})


def _portal_admin_count() -> int:
    return (
        User.objects.filter(
            is_active=True,
            role_grants__role=Role.PORTAL_ADMIN,
            role_grants__revoked_at__isnull=True,
        )
        .distinct()
        .count()
    )


def change_approve_by_operators(
    *, change: ChangeRequest, operators: list[OperatorSignoff]
) -> ChangeRequest:
    """Approve from the server's command line.

    One operator: only while the installation has fewer than two portal admins (a new
    installation, where no second admin exists to decide). Two distinct operators:
    break-glass, at any time, flagged on the request and audited as
    `change_request.break_glass` too. Each operator gives a reason; no operator may be
    the one who proposed the change. Side effects as `change_approve`.
    """
    errors: dict[str, str] = {}
    names = [op.name for op in operators]
    if not operators or len(operators) > 2:
        errors["operator"] = "Name one operator, or two for break-glass."
    elif len(set(names)) != len(names):
        errors["operator"] = "Break-glass needs two different operators."
    for op in operators:
        errors.update(op.errors())
    if errors:
        raise ValidationError(errors)
    break_glass = len(operators) == 2
    with transaction.atomic():
        locked = _locked_pending(change)
        proposer = next(
            (op for op in operators if locked.proposed_by_actor == actor_ref(op.actor())), None
        )
        if proposer is None and not break_glass and _portal_admin_count() >= 2:
            raise ValidationError(
                {
                    "operator": "This installation has a second portal admin: they decide in the "
                    "portal. Two operators together may break glass."
                }
            )
        if proposer is None:
            return _apply_and_record(
                locked,
                actor=operators[0].actor(),
                decided_by=None,
                reason=" / ".join(op.reason for op in operators),
                break_glass=break_glass,
                operators=operators,
                client_ip=None,
            )
    refusal = "The operator who proposed this cannot approve it."
    domain_refusal_record(
        code="four_eyes",
        reason=refusal,
        actor=proposer.actor(),
        object_type=AUDIT_OBJECT_TYPE,
        object_id=change.pk,
    )
    raise ValidationError({"operator": refusal})


def change_reject(
    *,
    change: ChangeRequest,
    rejected_by: User | None,
    actor: Actor,
    reason: str = "",
    client_ip: str | None = None,
) -> ChangeRequest:
    """A portal admin (the proposer too: a withdrawal) or an operator turns the change
    down; nothing changes. Side effects: audit `change_request.rejected`, e-mail to the
    board."""
    if rejected_by is not None and not (
        rejected_by.is_active and rejected_by.has_role(Role.PORTAL_ADMIN)
    ):
        raise ValidationError({"change": "Only a portal admin decides governance changes."})
    with transaction.atomic():
        locked = _locked_pending(change)
        locked.state = ChangeState.REJECTED
        locked.decided_by = rejected_by
        locked.decided_by_actor = actor_ref(actor)
        locked.decided_at = timezone.now()
        locked.decision_reason = reason[:1000]
        locked.save(
            update_fields=[
                "state",
                "decided_by",
                "decided_by_actor",
                "decided_at",
                "decision_reason",
            ]
        )
        audit_record(
            action="change_request.rejected",
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=locked.pk,
            payload={"kind": locked.kind, "reason": reason[:1000]},
            client_ip=client_ip,
        )
        _notify(
            locked,
            event_type=EventType.GOVERNANCE_CHANGE_DECIDED,
            summary=f"Rejected: {locked.summary}",
            actor=actor,
        )
    return locked


def _expire_one(change: ChangeRequest, *, now: Any) -> None:
    change.state = ChangeState.EXPIRED
    change.decided_at = now
    change.decided_by_actor = "system:changes"
    change.save(update_fields=["state", "decided_at", "decided_by_actor"])
    actor = Actor.system("changes")
    audit_record(
        action="change_request.expired",
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=change.pk,
        payload={"kind": change.kind, "label": change_kind_label(change.kind)},
    )
    _notify(
        change,
        event_type=EventType.GOVERNANCE_CHANGE_DECIDED,
        summary=f"Expired undecided: {change.summary}",
        actor=actor,
    )


def changes_expire_due() -> int:
    """Expire every pending request nobody decided in time. Side effects per request:
    state expired, audit `change_request.expired`, e-mail to the board. Returns how
    many."""
    now = timezone.now()
    due = list(
        ChangeRequest.objects.filter(state=ChangeState.PENDING, expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    expired = 0
    for pk in due:
        with transaction.atomic():
            change = ChangeRequest.objects.select_for_update().get(pk=pk)
            if change.state == ChangeState.PENDING and change.expires_at <= now:
                _expire_one(change, now=now)
                expired += 1
    return expired

"""Reads for governance change requests."""

from typing import Any

from django.db.models import Q, QuerySet

from portal.accounts.choices import BOARD_ROLES, Role
from portal.accounts.models import User
from portal.audit.choices import ActorType
from portal.audit.selectors import audit_actor_names_for
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest

# Keys of a change's before and after documents that hold a person's id (a role grant's).
PERSON_KEYS = ("user",)


def changes_list(*, state: str = "") -> QuerySet[ChangeRequest]:
    changes = ChangeRequest.objects.select_related("proposed_by", "decided_by")
    return changes.filter(state=state) if state else changes


def changes_pending_for(*, user: User) -> list[ChangeRequest]:
    """Pending requests `user` may decide: none unless a portal admin; not their own
    proposals, not changes about them."""
    if not (user.is_authenticated and user.has_role(Role.PORTAL_ADMIN)):
        return []
    pending = (
        ChangeRequest.objects.filter(state=ChangeState.PENDING)
        .exclude(Q(proposed_by=user))
        .select_related("proposed_by")
        .order_by("expires_at")
    )
    return [change for change in pending if user.pk not in change.subject_user_ids]


def changes_pending_shown_to_board(*, user: User) -> list[ChangeRequest]:
    """Pending requests a board member who is not an admin is shown (to read, not to
    decide): the board hears of every change to who approves or how."""
    if not user.is_authenticated or user.has_role(Role.PORTAL_ADMIN):
        return []
    if not user.has_role(*BOARD_ROLES):
        return []
    return list(
        ChangeRequest.objects.filter(state=ChangeState.PENDING)
        .select_related("proposed_by")
        .order_by("expires_at")
    )


def changes_about_user(*, user: User) -> QuerySet[ChangeRequest]:
    """Role changes proposed for `user`, newest first (their page shows who proposed
    and who approved)."""
    return changes_list().filter(subject_type="user", subject_id__startswith=f"{user.pk}/")


def change_sides_named(*, change: ChangeRequest, names_visible: bool) -> tuple[dict, dict]:
    """The change's before and after documents for its page. With `names_visible` (those
    who may read the audit trail by name: auditors and portal admins), each person's id
    under PERSON_KEYS becomes "Name (their roles now)", as the audit browser names
    actors; an id nobody is behind any more, or without `names_visible`, stays as
    stored. Copies: the stored documents are not changed. Three queries when naming,
    none otherwise."""
    before, after = dict(change.before or {}), dict(change.after or {})
    if not names_visible:
        return before, after

    def person_ids(side: dict) -> set[str]:
        return {
            str(value)
            for key in PERSON_KEYS
            if isinstance(value := side.get(key), int) and not isinstance(value, bool)
        }

    ids = person_ids(before) | person_ids(after)
    if not ids:
        return before, after
    names = audit_actor_names_for(pairs={(ActorType.USER, ident) for ident in ids})

    def named(side: dict) -> dict:
        out: dict[str, Any] = dict(side)
        for key in PERSON_KEYS:
            value = side.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                out[key] = names.get((ActorType.USER, str(value))) or value
        return out

    return named(before), named(after)

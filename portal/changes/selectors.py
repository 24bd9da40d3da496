"""Reads for governance change requests."""

from django.db.models import Q, QuerySet

from portal.accounts.choices import BOARD_ROLES, Role
from portal.accounts.models import User
from portal.changes.choices import ChangeState
from portal.changes.models import ChangeRequest


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

"""Who may do what on the review board, in one place."""

from typing import Any

from portal.accounts.choices import BOARD_ROLES, Role

# Anyone holding a role sees the queue and the reviews (auditors and owners included).
REVIEW_READERS: tuple[str, ...] = tuple(Role.values)
# People who ask the board for a review from the portal (or with their session in the API).
REVIEW_OPENERS: tuple[str, ...] = (Role.MODEL_OWNER, Role.DATA_SCIENCE_LEAD, Role.PORTAL_ADMIN)
BOARD: tuple[str, ...] = tuple(sorted(BOARD_ROLES))


def may_read_reviews(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*REVIEW_READERS))


def may_open_reviews(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*REVIEW_OPENERS))


def may_decide(user: Any) -> bool:
    """Board members decide; whether on a given review, the decide service says."""
    return bool(user.is_authenticated and user.has_role(*BOARD))


def may_manage_policies(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(Role.PORTAL_ADMIN))

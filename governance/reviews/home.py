"""The review board's panels on the home page: reviews waiting for the person's board
roles, and the reviews they asked for that are still open."""

from typing import Any

from governance.reviews.models import Review
from governance.reviews.permissions import may_open_reviews
from governance.reviews.selectors import reviews_queue, reviews_requested_open
from portal.accounts.choices import Role
from portal.ui.home import HomePanel, home_panel_register


def _waiting(user: Any, limit: int) -> list[Review] | None:
    if not user.board_roles:
        return None
    labels = dict(Role.choices)
    reviews = list(reviews_queue(user=user, tab="waiting")[:limit])
    for review in reviews:
        # The roles this person is asked for here, by label ("Privacy officer").
        review.roles_asked = [
            labels.get(role, role)
            for role in sorted(review.required_roles)
            if role in user.board_roles
        ]
    return reviews


def _requested(user: Any, limit: int) -> list[Review] | None:
    if not may_open_reviews(user):
        return None
    return list(reviews_requested_open(user=user)[:limit])


def register_home_panels() -> None:
    home_panel_register(
        HomePanel(
            name="reviews.waiting",
            title="Reviews waiting for your decision",
            template="reviews/home_waiting.html",
            rows=_waiting,
            order=10,
        )
    )
    home_panel_register(
        HomePanel(
            name="reviews.requested",
            title="Your review requests in progress",
            template="reviews/home_requested.html",
            rows=_requested,
            order=20,
        )
    )

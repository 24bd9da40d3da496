"""Writes for the review board: policies (services.policies) and reviews with their
decisions (services.reviews). The public names are re-exported here."""

from governance.reviews.services.policies import (
    policy_clean,
    policy_override_create,
    policy_override_delete,
    policy_update,
)
from governance.reviews.services.reviews import (
    DecisionRefused,
    ReviewOutcome,
    review_decide,
    review_open,
    review_recheck,
    reviews_evidence_changed,
    reviews_expire,
)

__all__ = [
    "DecisionRefused",
    "ReviewOutcome",
    "policy_clean",
    "policy_override_create",
    "policy_override_delete",
    "policy_update",
    "review_decide",
    "review_open",
    "review_recheck",
    "reviews_evidence_changed",
    "reviews_expire",
]

"""What the review board does when the registry announces something (connected in
ReviewsConfig.ready())."""

from typing import Any

from governance.models import ModelVersion
from governance.reviews.services import reviews_evidence_changed
from portal.audit.actors import Actor


def evidence_changed_receiver(
    sender: Any, *, version: ModelVersion, reason: str, actor: Actor, **kwargs: Any
) -> None:
    """A version's evidence changed: see `reviews_evidence_changed` (same transaction;
    the registry already holds the version row, which that service locks first)."""
    reviews_evidence_changed(version=version, reason=reason, actor=actor)

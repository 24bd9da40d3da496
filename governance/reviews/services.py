"""Writes for the review board."""

from governance.models import ModelVersion
from portal.audit.actors import Actor


def reviews_evidence_changed(*, version: ModelVersion, reason: str, actor: Actor) -> None:
    """Mark decisions on open reviews of `version` stale (reviews to be built)."""
    return None

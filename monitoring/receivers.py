"""Receivers of what lower apps announce: training's new versions bring the training
reference drift is scored against."""

from typing import Any

from monitoring.services import drift_reference_store
from portal.audit.actors import Actor

TRAINING = Actor.system("pipelines")


def on_version_trained(
    sender: Any, *, version: Any, serving_reference: dict, **_kwargs: Any
) -> None:
    """Store the new version's training reference (inside the registration's
    transaction: no reference, no registration, and the other way round)."""
    if serving_reference:
        drift_reference_store(version=version, reference=serving_reference, actor=TRAINING)

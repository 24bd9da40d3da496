"""Receivers of what lower apps announce: thin, they call monitoring's services.
Training's new versions bring the training reference drift is scored against; a
rolled-back rollout opens its incident."""

from typing import Any

from monitoring.incidents import CANARY_ANALYSIS, incident_open_for_rollback
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


def rollout_rolled_back_receive(
    *,
    rollout: Any,
    automatic: bool,
    reason: str,
    analysis: dict[str, Any] | None,
    actor: Any,
    **_: Any,
) -> None:
    """A rollout was rolled back (governance.rollouts.signals.rollout_rolled_back):
    open its incident, inside the rollback's transaction."""
    how = "automatic rollback" if automatic else "rollback"
    incident_open_for_rollback(
        rollout_id=rollout.pk,
        model=rollout.model,
        title=f"Canary {how}: {rollout.model.slug} {rollout.version.version} to {rollout.target}",
        reason=reason,
        automatic=automatic,
        analysis=analysis,
        actor=CANARY_ANALYSIS if automatic else actor,
    )

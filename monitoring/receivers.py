"""Receivers of what lower apps announce: thin, they call monitoring's services."""

from typing import Any

from monitoring.incidents import CANARY_ANALYSIS, incident_open_for_rollback


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

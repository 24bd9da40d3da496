"""The local rollout backend: rewrites the model server's routing document and follows
the server's readiness until it serves the new revision.

The document is written whole and renamed into place (`serving.routing`); the server
loads any new version before it switches, so no request is dropped.
"""

import time
from pathlib import Path

import requests

from serving.routing import (
    Fault,
    ModelRoute,
    Routing,
    RoutingError,
    Track,
    routing_update,
)
from worker.backends.rollouts import (
    PHASE_CANARY,
    PHASE_PROMOTE,
    PHASE_REVERT,
    RolloutBackendError,
    RolloutPlan,
)


def _served(faults: dict[str, Fault], track: Track) -> dict[str, Fault]:
    """The injected faults of the one version a finished rollout leaves serving. A fault
    kept for the version that left would come back with it as a later canary."""
    return {version: fault for version, fault in faults.items() if version == track.version}


class LocalRolloutBackend:
    def __init__(
        self, *, routing_file: str | Path, server_url: str, ready_timeout: float = 60.0
    ) -> None:
        self.routing_file = Path(routing_file)
        self.server_url = server_url.rstrip("/")
        self.ready_timeout = ready_timeout

    def _route(self, plan: RolloutPlan, current: ModelRoute | None) -> ModelRoute:
        stable = Track(version=plan.stable_version, artifact=plan.stable_artifact_uri)
        if current is not None and current.stable.version == plan.version:
            stable = current.stable  # promoted already: the rollout's version is stable
        faults = dict(current.faults) if current is not None else {}
        if plan.phase == PHASE_CANARY:
            canary = Track(version=plan.version, artifact=plan.artifact_uri, weight=plan.weight)
            return ModelRoute(plan.model, plan.kind, stable, canary, faults)
        if plan.phase == PHASE_PROMOTE:
            promoted = Track(version=plan.version, artifact=plan.artifact_uri)
            return ModelRoute(plan.model, plan.kind, promoted, None, _served(faults, promoted))
        if plan.phase == PHASE_REVERT:
            if current is not None and current.stable.version != plan.version:
                stable = current.stable
            return ModelRoute(plan.model, plan.kind, stable, None, _served(faults, stable))
        raise ValueError(f"unknown phase {plan.phase!r}")

    def apply(self, plan: RolloutPlan) -> str:
        def change(routing: Routing) -> dict[str, ModelRoute]:
            route = self._route(plan, routing.models.get(plan.model))
            return {**routing.models, plan.model: route}

        try:
            # Under the document's lock: the traffic simulator changes faults in it.
            routing = routing_update(self.routing_file, change)
        except RoutingError as error:
            raise RolloutBackendError(f"the routing document is broken: {error}") from None
        self._wait_ready(routing.revision)
        return f"local:{self.routing_file.name}@{routing.revision}"

    def check(self, plan: RolloutPlan) -> None:
        """Nothing but the portal changes the local routing: nothing to mirror."""

    def _wait_ready(self, revision: int) -> None:
        """Until the server says it serves `revision` (or a later one)."""
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{self.server_url}/readyz", timeout=5)
                body = answer.json()
                if answer.status_code == 200 and body.get("revision", -1) >= revision:
                    return
                last = f"{answer.status_code} {body}"
            except (requests.RequestException, ValueError) as error:
                last = str(error)
            time.sleep(0.1)
        raise RolloutBackendError(
            f"the model server at {self.server_url} did not serve revision {revision}: {last}"
        )

"""What a rollout backend does for the portal, whatever runs the model.

The portal hands a backend the whole desired state of one rollout (a `RolloutPlan`);
applying the same plan twice changes nothing the second time, which is what lets a
worker killed mid-step simply apply it again.
"""

from dataclasses import dataclass
from typing import Protocol

# What the plan asks for.
PHASE_CANARY = "canary"  # the version takes `weight` % of the traffic beside the stable one
PHASE_PROMOTE = "promote"  # the version serves everything, and is the new stable one
PHASE_REVERT = "revert"  # all traffic back to the stable version; the canary leaves


class RolloutBackendError(Exception):
    """The outside system did not take the change (down, refused, not ready in time);
    the rollout stays unsynced and the next tick or the sweep tries again."""


class RolloutOutsideFailed(RolloutBackendError):
    """The outside system reports the rollout failed on its side (Cloud Deploy: the
    rollout FAILED, was cancelled or halted): trying again will not help. The portal
    mirrors it (the rollout fails and its traffic goes back to the stable version)."""


@dataclass(frozen=True)
class RolloutPlan:
    rollout_id: int
    model: str  # the model's slug
    kind: str  # forecasting, segmentation, recommendation
    target: str
    phase: str
    version: str
    artifact_uri: str
    image_digest: str
    stable_version: str
    stable_artifact_uri: str
    weight: int  # the canary's share in percent (PHASE_CANARY)
    external_ref: str = ""  # what the backend said last time, e.g. a Cloud Deploy rollout
    image_uri: str = ""  # the model server image, without tag or digest
    steps: tuple[int, ...] = ()  # the strategy's canary weights, e.g. (10, 50, 100)


class RolloutBackend(Protocol):
    def apply(self, plan: RolloutPlan) -> str:
        """Bring the outside system to the plan and wait until it serves it; return its
        reference for the rollout. Raises RolloutBackendError."""
        ...

    def check(self, plan: RolloutPlan) -> None:
        """Raise RolloutOutsideFailed when the outside system reports the applied plan
        failed on its side since (a no-op where nothing else can fail it)."""
        ...

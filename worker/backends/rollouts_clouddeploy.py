"""The Cloud Deploy rollout backend: ships a model version to a GKE target as a
Cloud Deploy canary, phase by phase, and rolls the target back when the portal says so.

Talks to Cloud Deploy through the official client (google-cloud-deploy) over its REST
transport. Imports no portal app. The delivery pipeline (`pipeline_template`: one for
all models, as `deploy/models/clouddeploy.yaml`'s `ml-models`, or one per model with
`{model}` in it) and each release's Skaffold file (`skaffold_config_path`, `{model}`
standing for the slug) come from settings. A target with a canary strategy has the
phases `canary-<percentage>`... and `stable`: each portal step goes to the first phase
whose percentage is at least the step's weight (100% is `stable`), advancing through
the phases in between; a target with a standard strategy has `stable` alone, which
every step reaches (the canary's traffic is then the target's own business, e.g. the
canary namespace fed mirrored traffic).

What `apply` does for each phase of the portal's plan, every step safe to repeat
(resource ids are derived from the portal's rollout id, so a repeated create finds
the resource there and goes on):

* canary at w%: the release for the approved image digest (created once, rendered),
  the rollout to the target (created once; approved when Cloud Deploy asks, as the
  portal checked the board's gate when the rollout started), then advanced phase by
  phase until `canary-w` (`stable` at 100%) has deployed;
* promote: advanced to `stable`, until the rollout succeeded;
* revert: `rollbackTarget` on the pipeline (a rollback rollout with a fixed id, once).

Cloud Deploy's state is mirrored: a rollout that failed, was cancelled, halted or
rejected there raises RolloutOutsideFailed, and the portal fails its rollout.

Calls that fail with an outage (5xx, 429, 409 ABORTED, lost connection) are retried a
few times with backoff inside the call; a failure that outlasts them is a
RolloutBackendError and the portal's next tick tries again.
"""

import re
import time
from collections.abc import Callable
from typing import TypeVar

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import deploy_v1

from worker.backends.clouddeploy import (
    _FAILURES,
    MODEL_ANNOTATION,
    VERSION_ANNOTATION,
    _unavailable,
)
from worker.backends.rollouts import (
    PHASE_CANARY,
    PHASE_PROMOTE,
    PHASE_REVERT,
    RolloutBackendError,
    RolloutOutsideFailed,
    RolloutPlan,
)

ROLLOUT_ANNOTATION = "model-governance/rollout"
STABLE_PHASE = "stable"
# Rollout states after which it will never deploy again.
FAILED_STATES = frozenset({"FAILED", "CANCELLED", "CANCELLING", "HALTED", "APPROVAL_REJECTED"})
_ID_INVALID = re.compile(r"[^a-z0-9-]+")

T = TypeVar("T")


def resource_id(*parts: object) -> str:
    """A Cloud Deploy resource id from parts: lower-case letters, digits and hyphens,
    starting with a letter, 63 characters at most."""
    text = _ID_INVALID.sub("-", "-".join(str(p) for p in parts).lower()).strip("-")
    if not text or not text[0].isalpha():
        text = f"r-{text}"
    return text[:63].rstrip("-")


def phase_for(weight: int, phases: list[str]) -> str:
    """The phase a canary weight goes to: the first `canary-<p>` with p >= weight, else
    `stable` (at 100%, or on a target without canary phases)."""
    for phase in phases:
        percentage = phase.removeprefix("canary-")
        if phase.startswith("canary-") and percentage.isdigit() and int(percentage) >= weight:
            return phase
    return STABLE_PHASE


class CloudDeployRolloutBackend:
    """Drives one portal rollout as one Cloud Deploy rollout (see the module docstring).

    `target_ids` maps the portal's targets (staging, canary, production) to Cloud
    Deploy target ids; `image_name` is the image's name in the pipeline's Skaffold
    configuration; `skaffold_config_uri` the release's source (a `gs://` tarball).
    """

    def __init__(
        self,
        *,
        pipeline_template: str,
        target_ids: dict[str, str],
        image_name: str,
        skaffold_config_uri: str = "",
        skaffold_config_path: str = "",
        api_endpoint: str | None = None,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
        ready_timeout: float = 600.0,
        poll_seconds: float = 2.0,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        client: deploy_v1.CloudDeployClient | None = None,
    ) -> None:
        self.pipeline_template = pipeline_template
        self.target_ids = target_ids
        self.image_name = image_name
        self.skaffold_config_uri = skaffold_config_uri
        self.skaffold_config_path = skaffold_config_path
        self.timeout = timeout
        self.ready_timeout = ready_timeout
        self.poll_seconds = poll_seconds
        self.attempts = max(attempts, 1)
        self.backoff_seconds = backoff_seconds
        if client is None and api_endpoint and api_endpoint.startswith("http://"):
            # A local stand-in: no Google credentials to look for.
            credentials = credentials or AnonymousCredentials()
        self._client = client or deploy_v1.CloudDeployClient(
            transport="rest",
            credentials=credentials,
            client_options=ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None,
        )

    # --- names --------------------------------------------------------------------------

    def names(self, plan: RolloutPlan) -> dict[str, str]:
        """The pipeline, target id, release, rollout and rollback rollout of a plan."""
        pipeline = self.pipeline_template.format(model=plan.model)
        target_id = self.target_ids.get(plan.target)
        if not target_id:
            raise RolloutOutsideFailed(f"no Cloud Deploy target for {plan.target!r}")
        release_id = resource_id(plan.model, "v", plan.version, "r", plan.rollout_id)
        release = f"{pipeline}/releases/{release_id}"
        rollout_id = resource_id(target_id, "r", plan.rollout_id)
        return {
            "pipeline": pipeline,
            "target_id": target_id,
            "release_id": release_id,
            "release": release,
            "rollout_id": rollout_id,
            "rollout": f"{release}/rollouts/{rollout_id}",
            "rollback_id": resource_id("rollback", "r", plan.rollout_id, target_id),
        }

    # --- the portal's interface ---------------------------------------------------------

    def apply(self, plan: RolloutPlan) -> str:
        names = self.names(plan)
        if plan.phase == PHASE_REVERT:
            if plan.external_ref:  # nothing reached the target otherwise
                self._rollback(names)
            return plan.external_ref
        if plan.phase not in (PHASE_CANARY, PHASE_PROMOTE):
            raise ValueError(f"unknown phase {plan.phase!r}")
        self._release_ensure(plan, names)
        rollout = self._rollout_ensure(plan, names)
        weight = 100 if plan.phase == PHASE_PROMOTE else plan.weight
        wanted = phase_for(weight, [phase for phase, _ in self._phases(rollout)])
        self._advance_to(names["rollout"], rollout, wanted)
        return names["rollout"]

    def check(self, plan: RolloutPlan) -> None:
        """Mirror Cloud Deploy's state of the applied rollout: RolloutOutsideFailed when
        it failed, was cancelled or halted there, or its current phase failed."""
        if plan.phase == PHASE_REVERT or not plan.external_ref:
            return
        rollout = self._get_rollout(plan.external_ref)
        self._mirror(rollout)
        failed = [p for p, state in self._phases(rollout) if state in ("FAILED", "ABORTED")]
        if failed:
            raise RolloutOutsideFailed(f"phase {failed[0]} of {rollout.name} failed")

    # --- steps --------------------------------------------------------------------------

    def _call(self, operation: str, call: Callable[[], T], *, exists_ok: bool = False) -> T | None:
        """One API call, retried with backoff while the failure is an outage. With
        `exists_ok`, ALREADY_EXISTS (a repeated create) answers None."""
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except _FAILURES as exc:
                failure = _unavailable(exc, operation=operation)
                if exists_ok and failure.status_code == 409 and "ALREADY_EXISTS" in str(failure):
                    return None
                if not failure.retryable:
                    raise RolloutBackendError(str(failure)) from exc
                if attempt == self.attempts:
                    raise RolloutBackendError(
                        f"{failure} (after {self.attempts} attempts)"
                    ) from exc
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_rollout(self, name: str) -> deploy_v1.Rollout:
        found = self._call(
            "get rollout",
            lambda: self._client.get_rollout(name=name, retry=None, timeout=self.timeout),
        )
        if found is None:  # only creates answer None (ALREADY_EXISTS)
            raise RolloutBackendError(f"Cloud Deploy returned no rollout {name}")
        return found

    def _release_ensure(self, plan: RolloutPlan, names: dict[str, str]) -> None:
        """The release of the approved image digest, created once and rendered."""
        if not plan.image_digest:
            raise RolloutOutsideFailed(f"{plan.model} {plan.version} has no image digest")
        image = plan.image_uri or self.image_name
        release = deploy_v1.Release(
            description=f"{plan.model} {plan.version} (portal rollout {plan.rollout_id})",
            annotations={
                MODEL_ANNOTATION: plan.model,
                VERSION_ANNOTATION: plan.version,
                ROLLOUT_ANNOTATION: str(plan.rollout_id),
            },
            labels={"model": plan.model},
            build_artifacts=[
                deploy_v1.BuildArtifact(image=self.image_name, tag=f"{image}@{plan.image_digest}")
            ],
            skaffold_config_uri=self.skaffold_config_uri,
            skaffold_config_path=self.skaffold_config_path.format(model=plan.model),
        )
        self._call(
            "create release",
            lambda: self._client.create_release(
                request=deploy_v1.CreateReleaseRequest(
                    parent=names["pipeline"], release_id=names["release_id"], release=release
                ),
                retry=None,
                timeout=self.timeout,
            ),
            exists_ok=True,
        )
        deadline = time.monotonic() + self.ready_timeout
        while True:
            found = self._call(
                "get release",
                lambda: self._client.get_release(
                    name=names["release"], retry=None, timeout=self.timeout
                ),
            )
            if found is None:  # only creates answer None (ALREADY_EXISTS)
                raise RolloutBackendError(f"Cloud Deploy returned no release {names['release']}")
            state = deploy_v1.Release.RenderState(found.render_state).name
            if state == "SUCCEEDED":
                return
            if state == "FAILED":
                raise RolloutOutsideFailed(f"Cloud Deploy could not render {names['release']}")
            if time.monotonic() >= deadline:
                raise RolloutBackendError(f"{names['release']} is still rendering ({state})")
            time.sleep(self.poll_seconds)

    def _rollout_ensure(self, plan: RolloutPlan, names: dict[str, str]) -> deploy_v1.Rollout:
        """The rollout of the release to the target, created once, approved when it
        waits for approval; raises RolloutOutsideFailed when it failed there."""
        self._call(
            "create rollout",
            lambda: self._client.create_rollout(
                request=deploy_v1.CreateRolloutRequest(
                    parent=names["release"],
                    rollout_id=names["rollout_id"],
                    rollout=deploy_v1.Rollout(
                        target_id=names["target_id"],
                        annotations={ROLLOUT_ANNOTATION: str(plan.rollout_id)},
                    ),
                ),
                retry=None,
                timeout=self.timeout,
            ),
            exists_ok=True,
        )
        rollout = self._get_rollout(names["rollout"])
        if deploy_v1.Rollout.ApprovalState(rollout.approval_state).name == "NEEDS_APPROVAL":
            # The board's gate was checked when the portal's rollout started.
            self._call(
                "approve rollout",
                lambda: self._client.approve_rollout(
                    request=deploy_v1.ApproveRolloutRequest(name=names["rollout"], approved=True),
                    retry=None,
                    timeout=self.timeout,
                ),
            )
            rollout = self._get_rollout(names["rollout"])
        self._mirror(rollout)
        return rollout

    @staticmethod
    def _mirror(rollout: deploy_v1.Rollout) -> None:
        state = deploy_v1.Rollout.State(rollout.state).name
        if state in FAILED_STATES:
            reason = rollout.failure_reason or "no reason given"
            raise RolloutOutsideFailed(f"Cloud Deploy rollout {rollout.name} is {state}: {reason}")

    @staticmethod
    def _phases(rollout: deploy_v1.Rollout) -> list[tuple[str, str]]:
        return [(p.id, deploy_v1.Phase.State(p.state).name) for p in rollout.phases]

    def _advance_to(self, name: str, rollout: deploy_v1.Rollout, wanted: str) -> None:
        """Advance phase by phase until `wanted` has deployed (SUCCEEDED)."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            phases = self._phases(rollout)
            ids = [phase for phase, _ in phases]
            if wanted not in ids:
                raise RolloutOutsideFailed(f"{name} has no phase {wanted!r} ({', '.join(ids)})")
            states = dict(phases)
            if states[wanted] == "SUCCEEDED":
                return
            if states[wanted] in ("FAILED", "ABORTED"):
                raise RolloutOutsideFailed(f"phase {wanted} of {name} is {states[wanted]}")
            pending = [phase for phase, state in phases if state == "PENDING"]
            busy = [phase for phase, state in phases if state == "IN_PROGRESS"]
            if not busy and pending and ids.index(pending[0]) <= ids.index(wanted):
                phase_id = pending[0]
                self._call(
                    "advance rollout",
                    lambda phase_id=phase_id: self._client.advance_rollout(
                        request=deploy_v1.AdvanceRolloutRequest(name=name, phase_id=phase_id),
                        retry=None,
                        timeout=self.timeout,
                    ),
                )
            elif time.monotonic() >= deadline:
                raise RolloutBackendError(f"{name}: phase {wanted} has not deployed yet")
            else:
                time.sleep(self.poll_seconds)
            rollout = self._get_rollout(name)
            self._mirror(rollout)

    def _rollback(self, names: dict[str, str]) -> None:
        """Roll the target back to its last successful release, once (a fixed id)."""
        self._call(
            "rollback target",
            lambda: self._client.rollback_target(
                request=deploy_v1.RollbackTargetRequest(
                    name=names["pipeline"],
                    target_id=names["target_id"],
                    rollout_id=names["rollback_id"],
                    rollout_to_roll_back=names["rollout_id"],
                ),
                retry=None,
                timeout=self.timeout,
            ),
            exists_ok=True,
        )

"""Cloud Deploy approvals: read a rollout and its release, approve or reject it.

Talks to Cloud Deploy through the official client (google-cloud-deploy) over its REST
transport. Imports no portal app: callers pass plain resource names and get plain
records back. Every failure of the outside system comes out as CloudDeployUnavailable,
whose `retryable` says whether trying again later may help.

How a release names the model version it deploys (set by the release's creator, e.g.
`gcloud deploy releases create ... --annotations=model-governance/model=...`):

- annotation `model-governance/model` (or label `model`): the model's slug, e.g.
  `demand-forecasting`;
- annotation `model-governance/version` (or label `model-version`): the version;
  label values cannot hold dots, so prefer the annotation;
- the image digests come from the release's build artifacts (`image@sha256:...`).
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import google.auth.exceptions
import requests
from google.api_core import exceptions as core_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud import deploy_v1

from worker.backends.vertex_common import status_and_reason

MODEL_ANNOTATION = "model-governance/model"
VERSION_ANNOTATION = "model-governance/version"
MODEL_LABEL = "model"
VERSION_LABEL = "model-version"

DEFAULT_TIMEOUT_SECONDS = 30.0

# One path segment of a resource name: no separators a URL would read otherwise.
_ID = r"[^/:?#%\s]+"
_RELEASE = rf"projects/{_ID}/locations/{_ID}/deliveryPipelines/{_ID}/releases/{_ID}"
_RELEASE_NAME = re.compile(rf"^{_RELEASE}$")
_ROLLOUT_NAME = re.compile(rf"^(?P<release>{_RELEASE})/rollouts/{_ID}$")
_DIGEST = re.compile(r"@(?P<digest>sha256:[0-9a-f]{64})$")


class CloudDeployUnavailable(Exception):
    """Cloud Deploy did not do what was asked.

    `retryable` is true for server errors, throttling, timeouts and connection
    failures; false for answers that will not change on retry (not found, refused).
    `status_code` is the HTTP status when there was one.
    """

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


@dataclass(frozen=True)
class RolloutInfo:
    name: str
    uid: str
    release_name: str
    target_id: str
    approval_state: str  # NEEDS_APPROVAL, DOES_NOT_NEED_APPROVAL, APPROVED, REJECTED, ...
    state: str  # PENDING_APPROVAL, IN_PROGRESS, SUCCEEDED, APPROVAL_REJECTED, ...
    approve_time: datetime | None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def needs_approval(self) -> bool:
        return self.approval_state == "NEEDS_APPROVAL"


@dataclass(frozen=True)
class ReleaseInfo:
    name: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    model: str | None
    model_version: str | None
    image_digests: tuple[str, ...]
    abandoned: bool


def _timestamp(value: Any) -> datetime | None:
    # proto-plus gives a DatetimeWithNanoseconds, or the epoch when the field is unset.
    if not value or value.timestamp() == 0:
        return None
    return value


def _rollout_info(rollout: deploy_v1.Rollout) -> RolloutInfo:
    match = _ROLLOUT_NAME.match(rollout.name)
    return RolloutInfo(
        name=rollout.name,
        uid=rollout.uid,
        release_name=match["release"] if match else "",
        target_id=rollout.target_id,
        approval_state=deploy_v1.Rollout.ApprovalState(rollout.approval_state).name,
        state=deploy_v1.Rollout.State(rollout.state).name,
        approve_time=_timestamp(rollout.approve_time),
        labels=dict(rollout.labels),
        annotations=dict(rollout.annotations),
    )


def _release_info(release: deploy_v1.Release) -> ReleaseInfo:
    labels, annotations = dict(release.labels), dict(release.annotations)
    digests = []
    for artifact in release.build_artifacts:
        match = _DIGEST.search(artifact.tag)
        if match and match["digest"] not in digests:
            digests.append(match["digest"])
    return ReleaseInfo(
        name=release.name,
        uid=release.uid,
        labels=labels,
        annotations=annotations,
        model=annotations.get(MODEL_ANNOTATION) or labels.get(MODEL_LABEL) or None,
        model_version=annotations.get(VERSION_ANNOTATION) or labels.get(VERSION_LABEL) or None,
        image_digests=tuple(digests),
        abandoned=release.abandoned,
    )


def _unavailable(exc: Exception, *, operation: str) -> CloudDeployUnavailable:
    if isinstance(exc, core_exceptions.GoogleAPICallError):
        status = exc.code if isinstance(exc.code, int) else None
        # A 409 is ABORTED (a concurrent change, e.g. the rollout's etag moved: try
        # again) or ALREADY_EXISTS (final); only the body tells them apart.
        rpc_status, _ = status_and_reason(exc)
        retryable = (
            status is None or status >= 500 or status in (408, 429) or rpc_status == "ABORTED"
        )
        return CloudDeployUnavailable(
            f"Cloud Deploy {operation} failed ({status}"
            f"{' ' + rpc_status if rpc_status and rpc_status != 'UNKNOWN' else ''}): {exc.message}",
            retryable=retryable,
            status_code=status,
        )
    if isinstance(exc, core_exceptions.RetryError):
        return CloudDeployUnavailable(f"Cloud Deploy {operation} timed out", retryable=True)
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return CloudDeployUnavailable(
            f"Cloud Deploy {operation}: credentials refused: {exc}", retryable=False
        )
    return CloudDeployUnavailable(f"Cloud Deploy {operation} failed: {exc}", retryable=True)


_FAILURES = (
    core_exceptions.GoogleAPICallError,
    core_exceptions.RetryError,
    google.auth.exceptions.GoogleAuthError,
    requests.RequestException,
)


class CloudDeployApprovals:
    """Reads rollouts and releases and answers approvals, one call per method.

    The client's own retries are switched off: the Celery task that calls this decides
    when to try again (with backoff), so a failure surfaces at once.
    """

    def __init__(
        self,
        *,
        api_endpoint: str | None = None,
        credentials: Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        client: deploy_v1.CloudDeployClient | None = None,
    ) -> None:
        """`api_endpoint` may be a host (Google's by default) or an http(s):// URL."""
        self._timeout = timeout
        self._client = client or deploy_v1.CloudDeployClient(
            transport="rest",
            credentials=credentials,
            client_options=ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None,
        )

    def rollout_get(self, name: str) -> RolloutInfo:
        """The rollout `projects/.../releases/{r}/rollouts/{ro}` as Cloud Deploy sees it now."""
        if not _ROLLOUT_NAME.match(name):
            raise ValueError(f"not a Cloud Deploy rollout name: {name!r}")
        try:
            rollout = self._client.get_rollout(name=name, retry=None, timeout=self._timeout)
        except _FAILURES as exc:
            raise _unavailable(exc, operation="get rollout") from exc
        return _rollout_info(rollout)

    def release_get(self, name: str) -> ReleaseInfo:
        """The release `projects/.../deliveryPipelines/{dp}/releases/{r}`, with the model
        and version it declares (see the module docstring)."""
        if not _RELEASE_NAME.match(name):
            raise ValueError(f"not a Cloud Deploy release name: {name!r}")
        try:
            release = self._client.get_release(name=name, retry=None, timeout=self._timeout)
        except _FAILURES as exc:
            raise _unavailable(exc, operation="get release") from exc
        return _release_info(release)

    def rollout_approve(self, name: str, *, approved: bool) -> RolloutInfo:
        """Approve (or, with approved=False, reject) the rollout; returns it as it is after.

        Side effect: the rollout proceeds or is rejected in Cloud Deploy. Cloud Deploy
        refuses (FAILED_PRECONDITION, not retryable) a rollout no longer waiting for
        approval, so callers should read `rollout_get(...).approval_state` first.
        """
        if not _ROLLOUT_NAME.match(name):
            raise ValueError(f"not a Cloud Deploy rollout name: {name!r}")
        try:
            # `approved` is not a flattened argument of approve_rollout: it goes in the request.
            self._client.approve_rollout(
                request=deploy_v1.ApproveRolloutRequest(name=name, approved=approved),
                retry=None,
                timeout=self._timeout,
            )
        except _FAILURES as exc:
            raise _unavailable(exc, operation="approve rollout") from exc
        return self.rollout_get(name)

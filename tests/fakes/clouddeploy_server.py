"""A local stand-in for Cloud Deploy's REST API: releases, rollouts and approvals.

It answers the paths google-cloud-deploy's REST transport calls (from the generated
`rest_base.py` of `CloudDeployClient`), in Cloud Deploy's JSON format (camelCase
fields, RFC 3339 times, errors as `{"error": {"code", "message", "status"}}`), keeps
its state in memory and records every request, so tests can assert exactly what the
client sent.

    GET  /v1/projects/{p}/locations/{l}/deliveryPipelines/{dp}/releases/{r}               GetRelease
    GET  /v1/projects/{p}/locations/{l}/deliveryPipelines/{dp}/releases/{r}/rollouts/{ro} GetRollout
    POST /v1/projects/{p}/locations/{l}/deliveryPipelines/{dp}/releases/{r}/rollouts/{ro}:approve
    POST /v1/projects/{p}/locations/{l}/deliveryPipelines/{dp}/releases?releaseId=     CreateRelease
    POST /v1/projects/{p}/locations/{l}/deliveryPipelines/{dp}/releases/{r}/rollouts?rolloutId=
                                                                                      CreateRollout
    POST /v1/projects/{p}/locations/{l}/deliveryPipelines/{dp}/releases/{r}/rollouts/{ro}:advance
    POST /v1/projects/{p}/locations/{l}/deliveryPipelines/{dp}:rollbackTarget         RollbackTarget

Creates answer a finished long-running operation. A rollout created to a target runs
the pipeline's canary phases (`canary_percentages`: `canary-10`, ..., `stable`): the
first deploys at once, each later one when advanced to, in order; a target listed in
`approval_targets` waits for approval first. A create of an id that exists is
ALREADY_EXISTS (409), as Cloud Deploy answers.

Approving a rollout that is not waiting for approval is refused with
FAILED_PRECONDITION (HTTP 400), as Cloud Deploy does. The client asks for numeric
enums (`$alt=json;enum-encoding=int`); the fake answers enums as numbers when asked
and as names otherwise.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.fakes.json_http import Failure, JsonHttpFake, RawResponse, rfc3339, route_find

# google.cloud.deploy.v1.Rollout.ApprovalState and Rollout.State, as numbered in the
# API's proto definitions.
APPROVAL_STATES = {
    "APPROVAL_STATE_UNSPECIFIED": 0,
    "NEEDS_APPROVAL": 1,
    "DOES_NOT_NEED_APPROVAL": 2,
    "APPROVED": 3,
    "REJECTED": 4,
}
# google.cloud.deploy.v1.Phase.State.
PHASE_STATES = {
    "STATE_UNSPECIFIED": 0,
    "PENDING": 1,
    "IN_PROGRESS": 2,
    "SUCCEEDED": 3,
    "FAILED": 4,
    "ABORTED": 5,
    "SKIPPED": 6,
}
ROLLOUT_STATES = {
    "STATE_UNSPECIFIED": 0,
    "SUCCEEDED": 1,
    "FAILED": 2,
    "IN_PROGRESS": 3,
    "PENDING_APPROVAL": 4,
    "APPROVAL_REJECTED": 5,
    "PENDING": 6,
    "PENDING_RELEASE": 7,
    "CANCELLING": 8,
    "CANCELLED": 9,
    "HALTED": 10,
}
_ENUM_FIELDS = {"approvalState": APPROVAL_STATES, "state": ROLLOUT_STATES}

HTTP_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_RELEASE = (
    r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/deliveryPipelines/(?P<pipeline>[^/]+)/releases/(?P<release>[^/:]+)"
)
_PIPELINE = (
    r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/deliveryPipelines/(?P<pipeline>[^/:]+)"
)
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(rf"^/v1/{_PIPELINE}/releases$"), "create_release"),
    ("POST", re.compile(rf"^/v1/{_PIPELINE}:rollbackTarget$"), "rollback_target"),
    ("POST", re.compile(rf"^/v1/{_RELEASE}/rollouts$"), "create_rollout"),
    (
        "POST",
        re.compile(rf"^/v1/{_RELEASE}/rollouts/(?P<rollout>[^/:]+):advance$"),
        "advance_rollout",
    ),
    ("GET", re.compile(rf"^/v1/{_RELEASE}$"), "get_release"),
    ("GET", re.compile(rf"^/v1/{_RELEASE}/rollouts/(?P<rollout>[^/:]+)$"), "get_rollout"),
    (
        "POST",
        re.compile(rf"^/v1/{_RELEASE}/rollouts/(?P<rollout>[^/:]+):approve$"),
        "approve_rollout",
    ),
]


class CloudDeployApiError(Exception):
    def __init__(self, status: int, message: str, *, code_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code_name = code_name or HTTP_STATUS_NAMES.get(status, "UNKNOWN")


@dataclass
class FakeCloudDeployServer(JsonHttpFake):
    """Cloud Deploy's releases and rollouts REST API, in memory, on 127.0.0.1."""

    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    rollouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # project number -> project id: requests may name a project either way, as Cloud
    # Deploy accepts both; records are kept, and answered, under the project id.
    project_numbers: dict[str, str] = field(default_factory=dict)
    # The canary percentages every pipeline's targets run (phases canary-N..., stable).
    canary_percentages: tuple[int, ...] = (10, 50)
    # Target ids whose rollouts wait for approval.
    approval_targets: set[str] = field(default_factory=set)

    # --- what tests arrange -----------------------------------------------------------

    def add_release(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        images: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A release `projects/{p}/locations/{l}/deliveryPipelines/{dp}/releases/{r}`;
        `images` maps an image name to its full reference (`repo/image@sha256:...`)."""
        if not re.fullmatch(_RELEASE, name):
            raise ValueError(f"not a release name: {name!r}")
        release = {
            "name": name,
            "uid": f"uid-{abs(hash(name)) % 10**12}",
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
            "createTime": rfc3339(),
            "buildArtifacts": [
                {"image": image, "tag": reference} for image, reference in (images or {}).items()
            ],
            "renderState": "SUCCEEDED",
            "etag": "etag-1",
        }
        with self._lock:
            self.releases[name] = release
            return copy.deepcopy(release)

    def add_rollout(
        self,
        release: str,
        rollout_id: str,
        *,
        target_id: str,
        approval_state: str = "NEEDS_APPROVAL",
        state: str | None = None,
    ) -> dict[str, Any]:
        """A rollout of `release` to `target_id`, waiting for approval by default."""
        if approval_state not in APPROVAL_STATES:
            raise ValueError(f"unknown approval state {approval_state!r}")
        state = state or (
            "PENDING_APPROVAL" if approval_state == "NEEDS_APPROVAL" else "IN_PROGRESS"
        )
        name = f"{release}/rollouts/{rollout_id}"
        rollout = {
            "name": name,
            "uid": f"uid-{abs(hash(name)) % 10**12}",
            "targetId": target_id,
            "approvalState": approval_state,
            "state": state,
            "createTime": rfc3339(),
            "labels": {},
            "annotations": {},
            "etag": "etag-1",
        }
        with self._lock:
            self.rollouts[name] = rollout
            return copy.deepcopy(rollout)

    def rollout(self, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.rollouts[name])

    def fail(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int,
        message: str | None = None,
        times: int | None = 1,
        status_name: str | None = None,
    ) -> None:
        """Answer the next `times` requests matching (method, path regex) with an error;
        `times=None` keeps failing until `clear_failures()`. `status_name` is the
        google.rpc.Code name when the HTTP status alone does not say it (409 ABORTED)."""
        with self._lock:
            self._failures.append(
                Failure(
                    method=method.upper(),
                    path=re.compile(path_pattern),
                    status=status,
                    message=message or f"The service is currently unavailable ({status}).",
                    remaining=times,
                    status_name=status_name,
                )
            )

    # --- what tests read --------------------------------------------------------------

    # --- request handling -------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        request = self._request_keep(method, raw_path, headers, raw_body)
        path, query, body = request.path, request.query, request.body
        with self._lock:
            try:
                injected = self._injected_failure(method, path)
                if injected is not None:
                    raise CloudDeployApiError(
                        injected.status, injected.message, code_name=injected.status_name
                    )
                action, params = route_find(_ROUTES, method, path)
                if not action:
                    raise CloudDeployApiError(404, f"The requested URL {path} was not found.")
                result = getattr(self, f"_{action}")(body=body, query=query, **params)
                return 200, _encode_enums(result, numeric=_numeric_enums(query))
            except CloudDeployApiError as error:
                return error.status, {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "status": error.code_name,
                    }
                }

    def _release_name(self, parts: dict[str, str]) -> str:
        project = self.project_numbers.get(parts["project"], parts["project"])
        return (
            f"projects/{project}/locations/{parts['location']}"
            f"/deliveryPipelines/{parts['pipeline']}/releases/{parts['release']}"
        )

    def _get_release(self, *, body: Any, query: Any, **parts: str) -> dict[str, Any]:
        name = self._release_name(parts)
        if name not in self.releases:
            raise CloudDeployApiError(404, f"Resource '{name}' was not found")
        return copy.deepcopy(self.releases[name])

    def _get_rollout(self, *, body: Any, query: Any, rollout: str, **parts: str) -> dict[str, Any]:
        name = f"{self._release_name(parts)}/rollouts/{rollout}"
        if name not in self.rollouts:
            raise CloudDeployApiError(404, f"Resource '{name}' was not found")
        return copy.deepcopy(self.rollouts[name])

    def _approve_rollout(
        self, *, body: Any, query: Any, rollout: str, **parts: str
    ) -> dict[str, Any]:
        name = f"{self._release_name(parts)}/rollouts/{rollout}"
        record = self.rollouts.get(name)
        if record is None:
            raise CloudDeployApiError(404, f"Resource '{name}' was not found")
        if not isinstance(body, dict):
            raise CloudDeployApiError(400, "The request body must be an ApproveRolloutRequest.")
        if record["approvalState"] != "NEEDS_APPROVAL":
            raise CloudDeployApiError(
                400,
                f"rollout {name} is not awaiting approval (approval state "
                f"{record['approvalState']})",
                code_name="FAILED_PRECONDITION",
            )
        # proto3 JSON leaves out false booleans, so an absent `approved` is a rejection.
        approved = body.get("approved", False) is True
        record["approvalState"] = "APPROVED" if approved else "REJECTED"
        record["state"] = "IN_PROGRESS" if approved else "APPROVAL_REJECTED"
        record["approveTime"] = rfc3339()
        if approved and record.get("phases"):
            record["phases"][0]["state"] = "SUCCEEDED"  # the first phase deploys
        return {}

    # --- rollouts the portal drives ------------------------------------------------------

    def _pipeline_name(self, parts: dict[str, str]) -> str:
        project = self.project_numbers.get(parts["project"], parts["project"])
        return (
            f"projects/{project}/locations/{parts['location']}"
            f"/deliveryPipelines/{parts['pipeline']}"
        )

    @staticmethod
    def _operation(parts: dict[str, str], what: str) -> dict[str, Any]:
        return {
            "name": f"projects/{parts['project']}/locations/{parts['location']}"
            f"/operations/operation-{what}",
            "done": True,
        }

    @staticmethod
    def _one(query: dict[str, list[str]], name: str) -> str:
        values = query.get(name) or [""]
        if not values[0]:
            raise CloudDeployApiError(400, f"{name} is required")
        return values[0]

    def _create_release(self, *, body: Any, query: Any, **parts: str) -> dict[str, Any]:
        release_id = self._one(query, "releaseId")
        name = f"{self._pipeline_name(parts)}/releases/{release_id}"
        if name in self.releases:
            raise CloudDeployApiError(409, f"Resource '{name}' already exists")
        if not isinstance(body, dict) or not body.get("buildArtifacts"):
            raise CloudDeployApiError(400, "A release needs build artifacts.")
        self.releases[name] = {
            **body,
            "name": name,
            "uid": f"uid-{abs(hash(name)) % 10**12}",
            "createTime": rfc3339(),
            "renderState": "SUCCEEDED",
            "etag": "etag-1",
        }
        return self._operation(parts, f"release-{release_id}")

    def _create_rollout(self, *, body: Any, query: Any, **parts: str) -> dict[str, Any]:
        rollout_id = self._one(query, "rolloutId")
        release = self._release_name(parts)
        if release not in self.releases:
            raise CloudDeployApiError(404, f"Resource '{release}' was not found")
        name = f"{release}/rollouts/{rollout_id}"
        if name in self.rollouts:
            raise CloudDeployApiError(409, f"Resource '{name}' already exists")
        if not isinstance(body, dict) or not body.get("targetId"):
            raise CloudDeployApiError(400, "rollout.target_id is required")
        waits = body["targetId"] in self.approval_targets
        phases = [f"canary-{p}" for p in self.canary_percentages] + ["stable"]
        self.rollouts[name] = {
            **body,
            "name": name,
            "uid": f"uid-{abs(hash(name)) % 10**12}",
            "approvalState": "NEEDS_APPROVAL" if waits else "DOES_NOT_NEED_APPROVAL",
            "state": "PENDING_APPROVAL" if waits else "IN_PROGRESS",
            "createTime": rfc3339(),
            "etag": "etag-1",
            "phases": [
                {"id": phase, "state": "SUCCEEDED" if i == 0 and not waits else "PENDING"}
                for i, phase in enumerate(phases)
            ],
        }
        if not waits and phases == ["stable"]:
            self.rollouts[name]["state"] = "SUCCEEDED"  # a standard strategy: one phase
        return self._operation(parts, f"rollout-{rollout_id}")

    def _advance_rollout(
        self, *, body: Any, query: Any, rollout: str, **parts: str
    ) -> dict[str, Any]:
        name = f"{self._release_name(parts)}/rollouts/{rollout}"
        record = self.rollouts.get(name)
        if record is None:
            raise CloudDeployApiError(404, f"Resource '{name}' was not found")
        phase_id = (body or {}).get("phaseId", "")
        pending = [p for p in record.get("phases", []) if p["state"] == "PENDING"]
        if record["state"] != "IN_PROGRESS" or not pending or pending[0]["id"] != phase_id:
            raise CloudDeployApiError(
                400,
                f"rollout {name} cannot advance to {phase_id!r}",
                code_name="FAILED_PRECONDITION",
            )
        pending[0]["state"] = "SUCCEEDED"
        if phase_id == "stable":
            record["state"] = "SUCCEEDED"
        return {}

    def _rollback_target(self, *, body: Any, query: Any, **parts: str) -> dict[str, Any]:
        pipeline = self._pipeline_name(parts)
        if not isinstance(body, dict) or not body.get("targetId") or not body.get("rolloutId"):
            raise CloudDeployApiError(400, "target_id and rollout_id are required")
        existing = [n for n in self.rollouts if n.startswith(pipeline + "/releases/")]
        if any(n.endswith(f"/rollouts/{body['rolloutId']}") for n in existing):
            raise CloudDeployApiError(409, f"Rollout {body['rolloutId']} already exists")
        rolled = [n for n in existing if n.endswith(f"/rollouts/{body.get('rolloutToRollBack')}")]
        for rolled_name in rolled:
            self.rollouts[rolled_name]["state"] = "CANCELLED"
        release = rolled[0].rsplit("/rollouts/", 1)[0] if rolled else ""
        name = f"{release}/rollouts/{body['rolloutId']}"
        self.rollouts[name] = {
            "name": name,
            "targetId": body["targetId"],
            "approvalState": "DOES_NOT_NEED_APPROVAL",
            "state": "SUCCEEDED",
            "rollbackOfRollout": rolled[0] if rolled else "",
            "phases": [{"id": "stable", "state": "SUCCEEDED"}],
        }
        return {"rollbackConfig": {"rollout": {"targetId": body["targetId"]}}}

    def finish_phase(self, name: str, phase: str, state: str = "FAILED") -> None:
        """Cloud Deploy's side of a phase: mark it (and a failure, the rollout) done."""
        with self._lock:
            record = self.rollouts[name]
            for item in record["phases"]:
                if item["id"] == phase:
                    item["state"] = state
            if state == "FAILED":
                record["state"] = "FAILED"
                record["failureReason"] = f"phase {phase} failed its verification"


def _numeric_enums(query: dict[str, list[str]]) -> bool:
    # The client sends `$alt=json;enum-encoding=int` as one query parameter.
    return any("enum-encoding=int" in value for values in query.values() for value in values) or (
        "enum-encoding=int" in ";".join(query)
    )


def _encode_enums(value: Any, *, numeric: bool) -> Any:
    if not numeric:
        return value
    if isinstance(value, dict):
        return {
            key: [
                {**phase, "state": PHASE_STATES.get(phase.get("state"), phase.get("state"))}
                for phase in item
            ]
            if key == "phases"
            else _ENUM_FIELDS[key].get(item, item)
            if key in _ENUM_FIELDS and isinstance(item, str)
            else _encode_enums(item, numeric=numeric)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_encode_enums(item, numeric=numeric) for item in value]
    return value


# --- Pub/Sub push, signed the way Google signs it ------------------------------------------


class FakeGoogleOidc(JsonHttpFake):
    """Google's side of a Pub/Sub push: an RSA key, its certificate served at `certs_url`
    (the `{"kid": "PEM x509"}` format of https://www.googleapis.com/oauth2/v1/certs, or
    a JWK set with `certs_format="jwk"`), and ID tokens signed with it.

        with FakeGoogleOidc(audience=..., service_account=...) as google:
            headers = {"HTTP_AUTHORIZATION": google.authorization()}
            body = approvals_push_body(rollout=...)
    """

    def __init__(
        self,
        *,
        audience: str,
        service_account: str,
        certs_format: str = "x509",
        max_age: int | None = None,
    ) -> None:
        super().__init__()
        self.audience = audience
        self.service_account = service_account
        self.certs_format = certs_format
        self.max_age = max_age
        self.kid = "fake-google-key-1"
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certs_status = 200
        self.certs_requests = 0

    def certs_document(self) -> dict[str, Any]:
        if self.certs_format == "jwk":
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
            return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}
        return {self.kid: self.certificate_pem()}

    def certificate_pem(self) -> str:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-google-oidc")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=14))
            .sign(self.private_key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """The claims of a Pub/Sub push token; `name=None` leaves a claim out."""
        now = int(datetime.now(UTC).timestamp())
        claims = {
            "aud": self.audience,
            "azp": "113774264463038321964",
            "email": self.service_account,
            "email_verified": True,
            "exp": now + 3600,
            "iat": now,
            "iss": "https://accounts.google.com",
            "sub": "113774264463038321964",
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def token(self, *, signing_key: Any = None, kid: str | None = None, **overrides: Any) -> str:
        return jwt.encode(
            self.claims(**overrides),
            signing_key or self.private_key,
            algorithm="RS256",
            headers={"kid": kid or self.kid},
        )

    def authorization(self, **overrides: Any) -> str:
        return f"Bearer {self.token(**overrides)}"

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        """Every request gets the certificates (with `certs_status`, and Cache-Control
        when `max_age` is set)."""
        self.certs_requests += 1
        cache = (
            () if self.max_age is None else (("Cache-Control", f"public, max-age={self.max_age}"),)
        )
        body = json.dumps(self.certs_document()).encode()
        return self.certs_status, RawResponse(
            body, content_type="application/json; charset=UTF-8", headers=cache
        )

    @property
    def certs_url(self) -> str:
        return f"{self.url}/oauth2/v1/certs"


def approvals_push_body(
    *,
    rollout: str,
    target_id: str,
    action: str = "Required",
    message_id: str = "10428790912134907",
    subscription: str = "projects/zm-ml-prod/subscriptions/portal-clouddeploy-approvals",
    project_number: str = "123456789012",
) -> bytes:
    """The JSON a push subscription on `clouddeploy-approvals` posts for a rollout."""
    parts = rollout.split("/")
    attributes = {
        "Action": action,
        "Rollout": rollout,
        "RolloutId": parts[9],
        "ReleaseId": parts[7],
        "DeliveryPipelineId": parts[5],
        "TargetId": target_id,
        "Location": parts[3],
        "ProjectNumber": project_number,
    }
    return json.dumps(
        {
            "message": {
                "attributes": attributes,
                "messageId": message_id,
                "message_id": message_id,
                "publishTime": rfc3339(),
                "publish_time": rfc3339(),
            },
            "subscription": subscription,
        }
    ).encode()

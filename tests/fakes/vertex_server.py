"""A local stand-in for Vertex AI's REST API: the Model Registry and Pipelines.

It answers the paths google-cloud-aiplatform's REST transport really calls (taken from
the generated `rest_base.py` of `ModelServiceClient` and `PipelineServiceClient`), in
Vertex AI's JSON format (camelCase fields, RFC 3339 times, errors as
`{"error": {"code", "message", "status"}}`), keeps its state in memory, and records
every request so tests can assert exactly what the client sent.

    GET  /v1/projects/{p}/locations/{l}/models                         ListModels
    GET  /v1/projects/{p}/locations/{l}/models/{m}:listVersions        ListModelVersions
    GET  /v1/projects/{p}/locations/{l}/models/{m}[@{v}]               GetModel
    POST /v1/projects/{p}/locations/{l}/models/{m}@{v}:mergeVersionAliases
    POST /v1/projects/{p}/locations/{l}/models:upload                  UploadModel (an LRO)
    GET  /v1|ui/projects/{p}/locations/{l}/operations/{id}             GetOperation
    POST /v1/projects/{p}/locations/{l}/pipelineJobs?pipelineJobId=... CreatePipelineJob
    GET  /v1/projects/{p}/locations/{l}/pipelineJobs/{id}              GetPipelineJob
    POST /v1/projects/{p}/locations/{l}/pipelineJobs/{id}:cancel       CancelPipelineJob

UploadModel answers, as Vertex AI usually does, with an operation that is not done:
it is done on the poll after `upload_pending_polls` polls answered "not done" (0: done
at once), and only then does the new version exist. (The client library polls
`/ui/{name=.../operations/*}`, the first path its REST transport lists.)

The client asks for numeric enums (`$alt=json;enum-encoding=int`); the fake answers
enums as numbers when asked and as names otherwise, as Google does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fakes.json_http import Failure, JsonHttpFake, rfc3339, route_find

# google.cloud.aiplatform.v1.PipelineState and PipelineTaskDetail.State, as numbered
# in the API's proto definitions.
PIPELINE_STATES = {
    "PIPELINE_STATE_UNSPECIFIED": 0,
    "PIPELINE_STATE_QUEUED": 1,
    "PIPELINE_STATE_PENDING": 2,
    "PIPELINE_STATE_RUNNING": 3,
    "PIPELINE_STATE_SUCCEEDED": 4,
    "PIPELINE_STATE_FAILED": 5,
    "PIPELINE_STATE_CANCELLING": 6,
    "PIPELINE_STATE_CANCELLED": 7,
    "PIPELINE_STATE_PAUSED": 8,
}
TASK_STATES = {
    "STATE_UNSPECIFIED": 0,
    "PENDING": 1,
    "RUNNING": 2,
    "SUCCEEDED": 3,
    "CANCEL_PENDING": 4,
    "CANCELLING": 5,
    "CANCELLED": 6,
    "FAILED": 7,
    "SKIPPED": 8,
    "NOT_TRIGGERED": 9,
}
TERMINAL_PIPELINE_STATES = {
    "PIPELINE_STATE_SUCCEEDED",
    "PIPELINE_STATE_FAILED",
    "PIPELINE_STATE_CANCELLED",
}

# google.rpc.Code names for the HTTP statuses Google maps them to.
HTTP_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_LOCATION = r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(rf"^/v1/{_LOCATION}/models$"), "list_models"),
    (
        "GET",
        re.compile(rf"^/v1/{_LOCATION}/models/(?P<model>[^/:@]+):listVersions$"),
        "list_versions",
    ),
    (
        "POST",
        re.compile(rf"^/v1/{_LOCATION}/models/(?P<model>[^/:]+):mergeVersionAliases$"),
        "merge_aliases",
    ),
    ("GET", re.compile(rf"^/v1/{_LOCATION}/models/(?P<model>[^/:]+)$"), "get_model"),
    ("POST", re.compile(rf"^/v1/{_LOCATION}/models:upload$"), "upload_model"),
    (
        "GET",
        re.compile(rf"^/(?:v1|ui)/{_LOCATION}/operations/(?P<operation>[^/:]+)$"),
        "get_operation",
    ),
    ("POST", re.compile(rf"^/v1/{_LOCATION}/pipelineJobs$"), "create_pipeline_job"),
    ("GET", re.compile(rf"^/v1/{_LOCATION}/pipelineJobs/(?P<job>[^/:]+)$"), "get_pipeline_job"),
    (
        "POST",
        re.compile(rf"^/v1/{_LOCATION}/pipelineJobs/(?P<job>[^/:]+):cancel$"),
        "cancel_pipeline_job",
    ),
]
_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")
# A PipelineJob id is shorter than 128 characters.
_PIPELINE_JOB_ID = re.compile(r"^[a-z][-a-z0-9]{0,126}$")


class VertexApiError(Exception):
    """An error answer: HTTP status, message, and the google.rpc.Code name."""

    def __init__(self, status: int, message: str, status_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.status_name = status_name or HTTP_STATUS_NAMES.get(status, "UNKNOWN")


@dataclass
class FakeVertexServer(JsonHttpFake):
    """Vertex AI's Model Registry and Pipelines REST API, in memory, on 127.0.0.1.

    `page_size` is the largest page the fake returns when the client asks for none
    (or a larger one), so pagination is exercised with a handful of records.
    """

    page_size: int = 50
    # model resource name -> versions (Model JSON, name without "@version")
    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # pipeline job resource name -> PipelineJob JSON (state held as its enum name)
    pipeline_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # polls of an UploadModel operation answered "not done" before it is done
    upload_pending_polls: int = 1
    # operation resource name -> {"polls_left", "upload" (add_model_version args), "done"}
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- what tests arrange -----------------------------------------------------------

    def add_model_version(
        self,
        *,
        project: str,
        location: str,
        model_id: str,
        display_name: str,
        version_id: str | None = None,
        description: str = "",
        version_description: str = "",
        aliases: list[str] | tuple[str, ...] = (),
        labels: dict[str, str] | None = None,
        artifact_uri: str = "",
        image_uri: str = "",
        create_time: datetime | None = None,
    ) -> dict[str, Any]:
        """Register a model version; the first version of a model gets `default`."""
        name = f"projects/{project}/locations/{location}/models/{model_id}"
        created = rfc3339(create_time)
        with self._lock:
            versions = self.models.setdefault(name, [])
            version_id = version_id or str(len(versions) + 1)
            version_aliases = list(aliases)
            if not versions and "default" not in version_aliases:
                version_aliases.insert(0, "default")
            for alias in version_aliases:
                self._take_alias(versions, alias)
            version: dict[str, Any] = {
                "name": name,
                "displayName": display_name,
                "description": description,
                "versionId": version_id,
                "versionAliases": version_aliases,
                "versionDescription": version_description,
                "versionCreateTime": created,
                "versionUpdateTime": created,
                "createTime": versions[0]["createTime"] if versions else created,
                "updateTime": created,
                "labels": dict(labels or {}),
                "artifactUri": artifact_uri,
                "etag": f"etag-{model_id}-{version_id}",
            }
            if image_uri:
                version["containerSpec"] = {"imageUri": image_uri}
            versions.append(version)
            return copy.deepcopy(version)

    def version(self, version_name: str) -> dict[str, Any]:
        """The stored version `projects/.../models/{m}@{v}` (a copy)."""
        with self._lock:
            return copy.deepcopy(self._find_version(version_name))

    def set_pipeline_job_state(
        self,
        job: str,
        state: str,
        *,
        error: dict[str, Any] | None = None,
        task_details: list[dict[str, Any]] | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Move a pipeline job to `state` (e.g. "RUNNING" or "PIPELINE_STATE_RUNNING").

        Sets startTime on the first RUNNING and endTime on a terminal state, as Vertex
        AI does; `error` is a google.rpc.Status JSON, `task_details` the
        jobDetail.taskDetails list (task states as names).
        """
        full_state = state if state.startswith("PIPELINE_STATE_") else f"PIPELINE_STATE_{state}"
        if full_state not in PIPELINE_STATES:
            raise ValueError(f"unknown pipeline state {state!r}")
        now = rfc3339(at)
        with self._lock:
            record = self._find_job(job)
            record["state"] = full_state
            record["updateTime"] = now
            if full_state == "PIPELINE_STATE_RUNNING":
                record.setdefault("startTime", now)
            if full_state in TERMINAL_PIPELINE_STATES:
                record.setdefault("startTime", now)
                record["endTime"] = now
            if error is not None:
                record["error"] = error
            if task_details is not None:
                record.setdefault("jobDetail", {})["taskDetails"] = task_details
            return copy.deepcopy(record)

    def pipeline_job(self, job: str) -> dict[str, Any]:
        """The stored job, by id or resource name (a copy)."""
        with self._lock:
            return copy.deepcopy(self._find_job(job))

    def fail(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int,
        message: str | None = None,
        status_name: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` requests matching (method, path regex) with an error.

        `times=None` keeps failing until `clear_failures()`.
        """
        with self._lock:
            self._failures.append(
                Failure(
                    method=method.upper(),
                    path=re.compile(path_pattern),
                    status=status,
                    message=message or f"Injected error: HTTP {status}.",
                    status_name=status_name,
                    remaining=times,
                )
            )

    # --- what tests read --------------------------------------------------------------

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

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
                    raise VertexApiError(injected.status, injected.message, injected.status_name)
                action, params = route_find(_ROUTES, method, path)
                if not action:
                    raise VertexApiError(404, f"The requested URL {path} was not found.")
                result = getattr(self, f"_{action}")(query=query, body=body, **params)
                return 200, _encode_enums(result, numeric=_numeric_enums(query))
            except VertexApiError as error:
                return error.status, {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "status": error.status_name,
                    }
                }

    def _page(self, items: list[dict[str, Any]], query: dict[str, list[str]], key: str) -> dict:
        asked = int(query.get("pageSize", ["0"])[0] or 0)
        size = min(asked, self.page_size) if asked > 0 else self.page_size
        token = query.get("pageToken", [""])[0]
        try:
            start = int(token.removeprefix("offset-")) if token else 0
        except ValueError:
            raise VertexApiError(400, f"Invalid page token {token!r}.") from None
        page: dict[str, Any] = {key: copy.deepcopy(items[start : start + size])}
        if start + size < len(items):
            page["nextPageToken"] = f"offset-{start + size}"
        return page

    # Model Registry

    def _list_models(self, *, project: str, location: str, query: dict, body: Any) -> dict:
        prefix = f"projects/{project}/locations/{location}/models/"
        defaults = [
            next((v for v in versions if "default" in v["versionAliases"]), versions[0])
            for name, versions in self.models.items()
            if name.startswith(prefix) and versions
        ]
        return self._page(defaults, query, "models")

    def _list_versions(
        self, *, project: str, location: str, model: str, query: dict, body: Any
    ) -> dict:
        name = f"projects/{project}/locations/{location}/models/{model}"
        if name not in self.models:
            raise VertexApiError(404, f"Model {name} is not found.")
        return self._page(self.models[name], query, "models")

    def _upload_model(self, *, project: str, location: str, query: dict, body: Any) -> dict:
        """UploadModel: a long-running operation, done after `upload_pending_polls`."""
        model = body.get("model") or {}
        if not model.get("displayName") or not model.get("artifactUri"):
            raise VertexApiError(400, "model.displayName and model.artifactUri are required.")
        if not (model.get("containerSpec") or {}).get("imageUri"):
            raise VertexApiError(400, "model.containerSpec.imageUri is required.")
        _check_labels(model.get("labels"))
        parent_model = body.get("parentModel", "")
        if parent_model:
            if parent_model not in self.models:
                raise VertexApiError(404, f"Model {parent_model} not found.", "NOT_FOUND")
            model_id = parent_model.rsplit("/", 1)[1]
        else:
            new_models = sum(1 for op in self.operations.values() if op["new_model"])
            model_id = str(5000 + len(self.models) + new_models)
        name = f"projects/{project}/locations/{location}/operations/{len(self.requests)}"
        self.operations[name] = {
            "polls_left": self.upload_pending_polls,
            "new_model": not parent_model,
            "created": rfc3339(),
            "upload": {
                "project": project,
                "location": location,
                "model_id": model_id,
                "display_name": model["displayName"],
                "description": model.get("description", ""),
                "version_description": model.get("versionDescription", ""),
                "aliases": model.get("versionAliases", []),
                "labels": model.get("labels", {}),
                "artifact_uri": model["artifactUri"],
                "image_uri": model["containerSpec"]["imageUri"],
            },
            "response": None,
        }
        if self.upload_pending_polls <= 0:
            self._operation_finish(name)
        return self._operation_json(name)

    def _operation_finish(self, name: str) -> None:
        operation = self.operations[name]
        version = self.add_model_version(**operation["upload"])
        operation["new_model"] = False
        operation["response"] = {
            "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
            "model": version["name"],
            "modelVersionId": version["versionId"],
        }

    def _operation_json(self, name: str) -> dict:
        operation = self.operations[name]
        now = rfc3339()
        answer: dict[str, Any] = {
            "name": name,
            "metadata": {
                "@type": "type.googleapis.com/"
                "google.cloud.aiplatform.v1.UploadModelOperationMetadata",
                "genericMetadata": {"createTime": operation["created"], "updateTime": now},
            },
            "done": operation["response"] is not None,
        }
        if operation["response"] is not None:
            answer["response"] = copy.deepcopy(operation["response"])
        return answer

    def _get_operation(
        self, *, project: str, location: str, operation: str, query: dict, body: Any
    ) -> dict:
        name = f"projects/{project}/locations/{location}/operations/{operation}"
        if name not in self.operations:
            raise VertexApiError(404, f"Operation {name} is not found.")
        record = self.operations[name]
        if record["response"] is None:
            if record["polls_left"] > 0:
                record["polls_left"] -= 1
            else:
                self._operation_finish(name)
        return self._operation_json(name)

    def _get_model(self, *, project: str, location: str, model: str, query: dict, body: Any):
        name = f"projects/{project}/locations/{location}/models/{model}"
        if "@" not in model:
            name = f"{name}@default"
        return self._find_version(name)

    def _merge_aliases(
        self, *, project: str, location: str, model: str, query: dict, body: Any
    ) -> dict:
        name = f"projects/{project}/locations/{location}/models/{model}"
        if "@" not in model:
            raise VertexApiError(
                400, "The model version must be specified with its id, e.g. models/123@1."
            )
        aliases = (body or {}).get("versionAliases") or []
        if not aliases:
            raise VertexApiError(400, "versionAliases must not be empty.")
        for alias in aliases:
            if not _ALIAS.match(alias.removeprefix("-")):
                raise VertexApiError(400, f"Invalid version alias {alias!r}.")
        version = self._find_version(name)
        versions = self.models[version["name"]]
        for alias in aliases:
            if alias.startswith("-"):
                if alias == "-default":
                    raise VertexApiError(
                        400, "The default version alias cannot be removed.", "FAILED_PRECONDITION"
                    )
                if alias[1:] in version["versionAliases"]:
                    version["versionAliases"].remove(alias[1:])
            elif alias not in version["versionAliases"]:
                # An alias names one version of a model: assigning it moves it here.
                self._take_alias(versions, alias)
                version["versionAliases"].append(alias)
        version["versionUpdateTime"] = rfc3339()
        return copy.deepcopy(version)

    @staticmethod
    def _take_alias(versions: list[dict[str, Any]], alias: str) -> None:
        for other in versions:
            if alias in other["versionAliases"]:
                other["versionAliases"].remove(alias)

    def _find_version(self, version_name: str) -> dict[str, Any]:
        model_name, _, version_ref = version_name.partition("@")
        versions = self.models.get(model_name)
        if versions:
            for version in versions:
                if version_ref in (version["versionId"], *version["versionAliases"]):
                    return version
        raise VertexApiError(404, f"Model {version_name} is not found.")

    # Pipelines

    def _create_pipeline_job(self, *, project: str, location: str, query: dict, body: Any):
        if not isinstance(body, dict):
            raise VertexApiError(400, "The request body must be a PipelineJob.")
        parent = f"projects/{project}/locations/{location}"
        job_id = query.get("pipelineJobId", [""])[0]
        if not job_id:
            name_hint = (body.get("pipelineSpec") or {}).get("pipelineInfo", {}).get("name", "job")
            job_id = f"{name_hint}-{datetime.now(UTC):%Y%m%d%H%M%S}"
        if not _PIPELINE_JOB_ID.match(job_id):
            raise VertexApiError(
                400, f"PipelineJob id {job_id!r} must match regex [a-z][-a-z0-9]{{0,126}}."
            )
        spec = body.get("pipelineSpec")
        if not spec and not body.get("templateUri"):
            raise VertexApiError(400, "PipelineJob needs a pipelineSpec or a templateUri.")
        _check_labels(body.get("labels"))
        runtime = body.get("runtimeConfig") or {}
        if not runtime.get("gcsOutputDirectory") and not (spec or {}).get("defaultPipelineRoot"):
            raise VertexApiError(
                400, "A pipeline root (runtimeConfig.gcsOutputDirectory) is needed."
            )
        name = f"{parent}/pipelineJobs/{job_id}"
        if name in self.pipeline_jobs:
            raise VertexApiError(409, f"PipelineJob {name} already exists.")
        now = rfc3339()
        job = copy.deepcopy(body)
        job.update(
            name=name,
            state="PIPELINE_STATE_QUEUED",
            createTime=now,
            updateTime=now,
        )
        self.pipeline_jobs[name] = job
        return copy.deepcopy(job)

    def _get_pipeline_job(
        self, *, project: str, location: str, job: str, query: dict, body: Any
    ) -> dict:
        return copy.deepcopy(
            self._find_job(f"projects/{project}/locations/{location}/pipelineJobs/{job}")
        )

    def _cancel_pipeline_job(
        self, *, project: str, location: str, job: str, query: dict, body: Any
    ) -> dict:
        record = self._find_job(f"projects/{project}/locations/{location}/pipelineJobs/{job}")
        if record["state"] in TERMINAL_PIPELINE_STATES:
            raise VertexApiError(
                400,
                f"Cannot cancel PipelineJob {record['name']}: it is already "
                f"{record['state'].removeprefix('PIPELINE_STATE_')}.",
                "FAILED_PRECONDITION",
            )
        record["state"] = "PIPELINE_STATE_CANCELLING"
        record["updateTime"] = rfc3339()
        return {}

    def _find_job(self, job: str) -> dict[str, Any]:
        if "/" not in job:
            matches = [j for name, j in self.pipeline_jobs.items() if name.endswith(f"/{job}")]
            if len(matches) == 1:
                return matches[0]
        elif job in self.pipeline_jobs:
            return self.pipeline_jobs[job]
        raise VertexApiError(404, f"PipelineJob {job} is not found.")


_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def _check_labels(labels: Any) -> None:
    """Vertex AI refuses labels outside its rules (INVALID_ARGUMENT), as the API does."""
    for key, value in (labels or {}).items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(str(value)):
            raise VertexApiError(
                400,
                f"Label {key}={value!r} is invalid: keys and values hold lowercase letters, "
                "digits, '_' and '-', at most 63 characters.",
            )


def _numeric_enums(query: dict[str, list[str]]) -> bool:
    return any("enum-encoding=int" in value for value in query.get("$alt", []))


def _encode_enums(result: Any, *, numeric: bool) -> Any:
    """Write the pipeline and task states as numbers when the client asked for them."""
    if not numeric or not isinstance(result, dict):
        return result
    encoded = copy.deepcopy(result)
    if isinstance(encoded.get("state"), str) and encoded["state"] in PIPELINE_STATES:
        encoded["state"] = PIPELINE_STATES[encoded["state"]]
    for task in (encoded.get("jobDetail") or {}).get("taskDetails", []):
        if isinstance(task.get("state"), str):
            task["state"] = TASK_STATES[task["state"]]
    return encoded


@pytest.fixture()
def vertex_server() -> Iterator[FakeVertexServer]:
    """A running FakeVertexServer, stopped after the test."""
    with FakeVertexServer() as server:
        yield server

"""Vertex AI Pipelines: submit the compiled training pipeline, follow it, cancel it.

Talks to Vertex AI through google-cloud-aiplatform's low-level `PipelineServiceClient`
over REST; imports no portal app. The job id comes from the portal's run id, so a
submit retried after a crash or a lost answer finds the job the first attempt created
instead of starting a second one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from google.cloud import aiplatform_v1
from google.protobuf import json_format

from worker.backends.vertex_common import (
    CAUGHT_ERRORS,
    DEFAULT_TIMEOUT_SECONDS,
    VertexError,
    client_options,
    timestamp,
    translate_error,
    vertex_labels,
)

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})

# Vertex AI's rule for a PipelineJob id: shorter than 128 characters.
_JOB_ID_MAX = 127

# KFP parameter types and the Python values each accepts.
_PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "STRUCT": (dict,),
    "LIST": (list, tuple),
}


class PipelinesUnavailable(VertexError):
    """Vertex AI Pipelines could not take or answer a call; `reason` says why."""


@dataclass(frozen=True)
class PipelineJobRef:
    """A submitted job; `created` is False when a retried submit found it existing."""

    name: str  # projects/{project}/locations/{location}/pipelineJobs/{job_id}
    job_id: str
    state: str
    created: bool
    create_time: datetime | None


@dataclass(frozen=True)
class PipelineTaskStatus:
    """One step of a job (snapshot, validate, ... register) as Vertex AI reports it."""

    name: str
    state: str  # PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, CANCELLED, ...
    error_message: str
    start_time: datetime | None
    end_time: datetime | None


@dataclass(frozen=True)
class PipelineArtifact:
    """An artifact a step wrote: where it is, what it is, and its metadata."""

    task_name: str
    output_name: str
    uri: str
    schema_title: str  # system.Dataset, system.Model, system.Metrics, ...
    metadata: dict[str, Any]


@dataclass(frozen=True)
class PipelineJobStatus:
    """Where a job stands, and what it produced once it has."""

    name: str
    job_id: str
    state: str  # QUEUED, PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLING, CANCELLED, PAUSED
    error_message: str
    error_code: int | None
    create_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    update_time: datetime | None
    tasks: tuple[PipelineTaskStatus, ...]
    artifacts: tuple[PipelineArtifact, ...]
    model_resource_name: str | None  # projects/.../models/{id}@{version}, from register
    metrics: dict[str, float]

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def pipeline_job_id(run_id: str, *, prefix: str = "portal") -> str:
    """The Vertex AI job id for a portal run: the same run always gives the same id.

    Ids must match `[a-z][-a-z0-9]{0,126}` (shorter than 128); a run id that does not
    fit is lowered, its other characters become dashes, and an over-long id keeps a
    hash of the whole.
    """
    raw = f"{prefix}-{run_id}"
    slug = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if not slug[:1].isalpha():
        slug = f"run-{slug}"
    if slug == raw and len(slug) <= _JOB_ID_MAX:
        return slug
    # A lossy slug carries a hash of the original, so two run ids that slug alike differ.
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    return f"{slug[: _JOB_ID_MAX - 11].rstrip('-')}-{digest}"


def pipeline_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """Labels of a pipeline job, cleaned as every Vertex AI label is (vertex_labels)."""
    return vertex_labels(labels)


def load_pipeline_spec(template_path: str | Path) -> dict[str, Any]:
    """The PipelineSpec of a compiled pipeline (a KFP v2 JSON file)."""
    data = json.loads(Path(template_path).read_text())
    # Older compilers wrapped the spec in a job ({"pipelineSpec": ..., "runtimeConfig"}).
    spec = data.get("pipelineSpec", data)
    if "root" not in spec or "pipelineInfo" not in spec:
        raise ValueError(f"{template_path} is not a compiled KFP pipeline (no root/pipelineInfo)")
    return spec


def check_parameters(spec: dict[str, Any], parameters: dict[str, Any]) -> None:
    """Refuse parameters the pipeline does not declare, lacks, or types differently."""
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"the pipeline declares no parameter {', '.join(unknown)}")
    missing = sorted(
        name
        for name, definition in declared.items()
        if name not in parameters
        and "defaultValue" not in definition
        and not definition.get("isOptional")
    )
    if missing:
        raise ValueError(f"the pipeline needs parameter {', '.join(missing)}")
    for name, value in parameters.items():
        kind = declared[name].get("parameterType", "STRING")
        accepted = _PARAMETER_TYPES.get(kind, (object,))
        is_bool = isinstance(value, bool)
        if not isinstance(value, accepted) or (is_bool and kind != "BOOLEAN"):
            raise ValueError(f"parameter {name} must be {kind}, not {type(value).__name__}")


class VertexPipelines:
    """Vertex AI Pipelines in one project and region.

    `api_endpoint` defaults to the region's Vertex AI host; an `http://host:port`
    endpoint (a local stand-in) is spoken to over plain HTTP. `credentials` defaults
    to Application Default Credentials. `job_id_prefix` keeps the job ids of two
    portals (staging, production) sharing a project apart.
    """

    def __init__(
        self,
        project: str,
        location: str,
        api_endpoint: str | None = None,
        credentials: Any = None,
        *,
        job_id_prefix: str = "portal",
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.project = project
        self.location = location
        self.job_id_prefix = job_id_prefix
        self.timeout = timeout
        self._client = aiplatform_v1.PipelineServiceClient(
            credentials=credentials,
            transport="rest",
            client_options=client_options(location, api_endpoint),
        )

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def job_name(self, job_id: str) -> str:
        return f"{self.parent}/pipelineJobs/{job_id}"

    def submit(
        self,
        *,
        run_id: str,
        display_name: str,
        template_path: str | Path,
        parameters: dict[str, Any],
        pipeline_root: str,
        labels: dict[str, str] | None = None,
        service_account: str | None = None,
        container_image: str | None = None,
    ) -> PipelineJobRef:
        """Create the PipelineJob for run `run_id`, or find the one already created.

        Side effect in Vertex AI: one PipelineJob named from `run_id` (see
        `pipeline_job_id`), with `parameters` as runtime parameter values and its
        outputs under `pipeline_root` (a gs:// URI). `container_image` replaces the
        image of every step, so the steps run the release the portal runs.
        """
        spec = load_pipeline_spec(template_path)
        check_parameters(spec, parameters)
        if container_image:
            spec = _with_image(spec, container_image)
        job_id = pipeline_job_id(run_id, prefix=self.job_id_prefix)
        job = aiplatform_v1.PipelineJob(
            display_name=display_name,
            pipeline_spec=spec,
            labels=pipeline_labels(labels),
            runtime_config=aiplatform_v1.PipelineJob.RuntimeConfig(
                parameter_values=parameters,
                gcs_output_directory=pipeline_root,
            ),
            service_account=service_account or "",
        )
        try:
            created = self._client.create_pipeline_job(
                parent=self.parent, pipeline_job=job, pipeline_job_id=job_id, timeout=self.timeout
            )
        except CAUGHT_ERRORS as error:
            translated = _unavailable(error, "create pipeline job")
            if translated.status != "ALREADY_EXISTS":
                raise translated from error
            # A previous attempt created it (its answer was lost, or the worker died).
            existing = self._get(self.job_name(job_id))
            return _ref_from(existing, created=False)
        return _ref_from(created, created=True)

    def get_state(self, job_name: str) -> PipelineJobStatus:
        """The job's state, times, error, steps and output artifacts."""
        return _status_from(self._get(self._full_name(job_name)))

    def cancel(self, job_name: str) -> None:
        """Ask Vertex AI to cancel the job; it passes through CANCELLING to CANCELLED.

        A job already finished answers FAILED_PRECONDITION (raised as ours).
        """
        try:
            self._client.cancel_pipeline_job(name=self._full_name(job_name), timeout=self.timeout)
        except CAUGHT_ERRORS as error:
            raise _unavailable(error, "cancel pipeline job") from error

    def _get(self, name: str) -> aiplatform_v1.PipelineJob:
        try:
            return self._client.get_pipeline_job(name=name, timeout=self.timeout)
        except CAUGHT_ERRORS as error:
            raise _unavailable(error, "get pipeline job") from error

    def _full_name(self, job_name: str) -> str:
        return job_name if "/" in job_name else self.job_name(job_name)


def _unavailable(error: Exception, operation: str) -> PipelinesUnavailable:
    return translate_error(error, operation=operation, error_class=PipelinesUnavailable)


def _with_image(spec: dict[str, Any], image: str) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for executor in spec.get("deploymentSpec", {}).get("executors", {}).values():
        if "container" in executor:
            executor["container"]["image"] = image
    return spec


def _state_name(job: aiplatform_v1.PipelineJob) -> str:
    return aiplatform_v1.PipelineState(job.state).name.removeprefix("PIPELINE_STATE_")


def _ref_from(job: aiplatform_v1.PipelineJob, *, created: bool) -> PipelineJobRef:
    return PipelineJobRef(
        name=job.name,
        job_id=job.name.rsplit("/", 1)[-1],
        state=_state_name(job),
        created=created,
        create_time=timestamp(job, "create_time"),
    )


def _status_from(job: aiplatform_v1.PipelineJob) -> PipelineJobStatus:
    tasks: list[PipelineTaskStatus] = []
    artifacts: list[PipelineArtifact] = []
    for task in job.job_detail.task_details:
        tasks.append(
            PipelineTaskStatus(
                name=task.task_name,
                state=aiplatform_v1.PipelineTaskDetail.State(task.state).name,
                error_message=task.error.message,
                start_time=timestamp(task, "start_time"),
                end_time=timestamp(task, "end_time"),
            )
        )
        for output_name, artifact_list in task.outputs.items():
            for artifact in artifact_list.artifacts:
                raw = type(artifact).pb(artifact)
                artifacts.append(
                    PipelineArtifact(
                        task_name=task.task_name,
                        output_name=output_name,
                        uri=artifact.uri,
                        schema_title=artifact.schema_title,
                        metadata=json_format.MessageToDict(raw.metadata),
                    )
                )
    error_message = job.error.message
    if not error_message:
        error_message = next((t.error_message for t in tasks if t.error_message), "")
    return PipelineJobStatus(
        name=job.name,
        job_id=job.name.rsplit("/", 1)[-1],
        state=_state_name(job),
        error_message=error_message,
        error_code=job.error.code or None,
        create_time=timestamp(job, "create_time"),
        start_time=timestamp(job, "start_time"),
        end_time=timestamp(job, "end_time"),
        update_time=timestamp(job, "update_time"),
        tasks=tuple(tasks),
        artifacts=tuple(artifacts),
        model_resource_name=_model_resource_name(artifacts),
        metrics=_metrics(artifacts),
    )


def _model_resource_name(artifacts: list[PipelineArtifact]) -> str | None:
    # The register step (ours, or Google's ModelUploadOp as google.VertexModel) records
    # the registry's name for the new version in its output's metadata.
    ordered = sorted(artifacts, key=lambda a: (a.task_name != "register", a.output_name))
    for artifact in ordered:
        name = artifact.metadata.get("resourceName")
        if isinstance(name, str) and "/models/" in name:
            return name
    return None


def _metrics(artifacts: list[PipelineArtifact]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for artifact in artifacts:
        if artifact.schema_title == "system.Metrics":
            for key, value in artifact.metadata.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[key] = float(value)
    return metrics

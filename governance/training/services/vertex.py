"""The Vertex AI runner: training runs on Vertex AI Pipelines.

A run is submitted as a PipelineJob from the compiled definition in deploy/pipelines/
(the job id derives from the run, so a retried submit finds the job instead of starting
a second one). `training.vertex_poll` then follows the job: it mirrors the job's task
states into the run's steps, and once the job has succeeded it registers the version
from the payload the pipeline's register step left in its artifact metadata, through
the steps both runners share (RunAttempt: registration, card; the retraining decision), and
uploads it to the Vertex AI Model Registry.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from governance.clients import vertex_registry
from governance.models import ModelVersion, RegisteredModel
from governance.services.data_subjects import training_suppression_list
from governance.training.choices import RunState, StepState
from governance.training.clients import vertex_pipelines
from governance.training.models import PipelineRun, PipelineStepRun
from governance.training.services.attempt import (
    PIPELINE_ACTOR,
    RunAttempt,
    RunStopped,
    code_version_for,
)
from governance.training.services.retraining import retraining_decide
from portal.audit.services import audit_record
from worker.backends.vertex_common import VertexError
from worker.backends.vertex_pipelines import PipelineJobStatus
from worker.backends.vertex_registry import UploadPending

logger = logging.getLogger(__name__)

TEMPLATE = Path(settings.BASE_DIR) / "deploy" / "pipelines" / "training_pipeline.json"
# Vertex AI task name -> the run's step; the portal adds `register` and `compare`.
TASK_STEPS = {
    "snapshot": "snapshot",
    "validate": "validate",
    "features": "features",
    "train": "train",
    "evaluate": "evaluate",
    "register": "package",
}
TASK_STATES = {
    "RUNNING": StepState.RUNNING,
    "SUCCEEDED": StepState.SUCCEEDED,
    "SKIPPED": StepState.SKIPPED,
    "FAILED": StepState.FAILED,
    "CANCELLED": StepState.FAILED,
}
POLL_SECONDS = 30
# How long one poll waits for the model upload's operation before leaving it to the
# next poll (a task should not sit waiting on Vertex AI).
UPLOAD_WAIT_SECONDS = 5.0


@dataclass
class _CardFacts:
    data_schema: dict = field(default_factory=dict)
    training_data: dict = field(default_factory=dict)
    evaluation_data: dict = field(default_factory=dict)
    text: dict = field(default_factory=dict)


@dataclass
class VertexResult:
    """The register step's payload, in the shape the local runner's result has."""

    artifact_uri: str
    artifact_digest: str
    data_version: str
    code_version: str
    hyperparameters: dict
    metrics: dict
    metric_slices: dict
    card_facts: _CardFacts
    job_name: str
    seed: int = 0

    @classmethod
    def from_job(cls, status: PipelineJobStatus) -> "VertexResult":
        payload = next(
            (
                a.metadata
                for a in status.artifacts
                if a.task_name == "register" and a.output_name == "registered_model"
            ),
            None,
        )
        if not payload or "artifactUri" not in payload:
            raise ValueError("the job's register step left no registration payload")
        facts = payload.get("cardFacts") or {}
        return cls(
            artifact_uri=payload["artifactUri"],
            artifact_digest=payload.get("artifactDigest", ""),
            data_version=payload.get("dataVersion", ""),
            code_version=payload.get("codeVersion", ""),
            hyperparameters=payload.get("hyperparameters") or {},
            metrics={k: float(v) for k, v in (payload.get("metrics") or {}).items()},
            metric_slices=payload.get("metricSlices") or {},
            card_facts=_CardFacts(
                data_schema=facts.get("data_schema") or {},
                training_data=facts.get("training_data") or {},
                evaluation_data=facts.get("evaluation_data") or {},
                text=facts.get("text") or {},
            ),
            job_name=status.name,
        )


def _image_digest(image: str) -> str:
    _, _, digest = image.partition("@")
    return digest


def suppression_list_uri(*, run: PipelineRun) -> str:
    """Where a run's copy of the suppression list goes: beside the artifacts the run
    trains, `<VERTEX_ARTIFACT_ROOT>/suppression/<run ref>.json`."""
    return f"{settings.VERTEX_ARTIFACT_ROOT.rstrip('/')}/suppression/{run.pipeline_run_ref}.json"


class SuppressionKeySecretMissing(Exception):
    """The run has a suppression list but the job would have no way to read its
    hashing key (VERTEX_SUPPRESSION_KEY_SECRET is not set)."""


def _suppression_list_upload(*, run: PipelineRun) -> str:
    """Write the suppression list for the run and upload it beside its artifacts; the
    URI, or "" when no app keeps a list. A retried submit uploads the list as it is
    then (the job reads it once, in its snapshot step). OSError (CloudStorageError)
    when the file cannot be written or uploaded; SuppressionKeySecretMissing, before
    any upload, when there is a list and no secret the job could read its key from."""
    from pipelines.cloud_storage import upload_file  # -- slow

    path = training_suppression_list(purpose=f"training run {run.pipeline_run_ref}")
    if path is None:
        return ""
    if not settings.VERTEX_SUPPRESSION_KEY_SECRET:
        raise SuppressionKeySecretMissing(
            "the job could not read the suppression list's hashing key: set "
            "VERTEX_SUPPRESSION_KEY_SECRET to the Secret Manager secret version holding "
            "DSAR_SUPPRESSION_KEY (projects/P/secrets/S/versions/V, or "
            "projects/P/locations/L/secrets/S/versions/V for a regional secret)"
        )
    uri = suppression_list_uri(run=run)
    upload_file(path, uri)
    return uri


def vertex_run_submit(*, run: PipelineRun) -> None:
    """Submit (or find, on a retry) the run's PipelineJob and queue the first poll.

    People who objected, restricted, were erased or withdrew consent are left out of
    what the job trains on (GDPR Arts. 17, 18, 21), as on the local runner: the list is
    written, uploaded beside the run's artifacts and handed to the pipeline as its
    `suppression_list` parameter, with the Secret Manager secret version the job reads
    the list's hashing key from (VERTEX_SUPPRESSION_KEY_SECRET) as
    `suppression_key_secret`; never the key itself, which anyone who can view the job
    would see.

    Side effects: the suppression list's file and its `gs://` copy (with the writer's
    audit event), the job in Vertex AI, the run's external_ref, audit
    `pipeline_run.submitted` (naming the list's URI); a submit Vertex AI refuses fails
    the run. A list that cannot be written or uploaded fails the run and submits
    nothing: a job must never train without it. So does a list without
    VERTEX_SUPPRESSION_KEY_SECRET (the job could not read it).
    """
    runner = VertexRunAttempt(run=run, attempt=run.attempts, echo=None)
    runner.begin("snapshot")
    try:
        suppression = _suppression_list_upload(run=run)
    except OSError as error:  # CloudStorageError is one
        runner.fail(
            "snapshot",
            f"Could not hand the job the suppression list, so nothing was submitted: {error}",
        )
        return
    except SuppressionKeySecretMissing as error:
        runner.fail("snapshot", f"Nothing was submitted: {error}.")
        return
    if suppression:
        runner.log(f"suppression list uploaded for the job: {suppression}")
    parameters = {
        "model_kind": run.model.slug,
        "data_version": run.snapshot_id or "latest",
        "code_version": code_version_for(""),
        "artifact_root": settings.VERTEX_ARTIFACT_ROOT,
        "suppression_list": suppression,
        "suppression_key_secret": settings.VERTEX_SUPPRESSION_KEY_SECRET if suppression else "",
    }
    try:
        job = vertex_pipelines().submit(
            run_id=run.pk,
            display_name=f"{run.model.slug}-run-{run.pk}",
            template_path=str(TEMPLATE),
            parameters=parameters,
            pipeline_root=settings.VERTEX_PIPELINE_ROOT,
            labels={"portal-run": str(run.pk), "portal-model": run.model.slug},
            service_account=settings.VERTEX_SERVICE_ACCOUNT or None,
            container_image=settings.VERTEX_PIPELINES_IMAGE,
        )
    except VertexError as error:
        if error.retryable:
            raise
        runner.fail("snapshot", f"Vertex AI refused the pipeline job: {error.reason}")
        return
    except (ValueError, OSError) as error:  # the compiled spec or parameters are ours to fix
        runner.fail("snapshot", f"Could not submit the pipeline job: {error}")
        return
    with transaction.atomic():
        locked = runner.lock()
        locked.external_ref = job.name
        locked.heartbeat_at = timezone.now()
        locked.save(update_fields=["external_ref", "heartbeat_at"])
        audit_record(
            action="pipeline_run.submitted",
            actor=PIPELINE_ACTOR,
            object_type="pipeline_run",
            object_id=run.pk,
            payload={
                "job": job.name,
                "created": job.created,
                "attempt": runner.attempt,
                "suppression_list": suppression,
            },
        )
    runner.log(
        f"{'submitted' if job.created else 'found the already submitted'} Vertex AI "
        f"pipeline job {job.name}"
    )
    from governance.training.tasks import vertex_poll  # noqa: PLC0415 -- task

    transaction.on_commit(lambda: vertex_poll.apply_async(args=[run.pk], countdown=POLL_SECONDS))


def vertex_run_poll(*, run_id: int) -> bool:
    """Follow the run's job once; True when the run is finished (no further poll).

    Side effects: step states and logs mirrored from the job; on success the version
    registered, its card written, uploaded to the Vertex AI Model Registry, and the
    retraining decision made, as for a local run; on failure the run failed with the
    job's error. An upload whose operation is not done yet answers False (poll again:
    the next poll follows the same operation).
    """
    run = PipelineRun.objects.select_related("model").get(pk=run_id)
    if run.state != RunState.RUNNING or not run.external_ref:
        return True
    runner = VertexRunAttempt(run=run, attempt=run.attempts, echo=None)
    try:
        status = vertex_pipelines().get_state(run.external_ref)
        runner.mirror(status)
        if not status.is_terminal:
            runner.heartbeat()
            return False
        if status.state != "SUCCEEDED":
            failed = next((t for t in status.tasks if t.state == "FAILED"), None)
            step = TASK_STEPS.get(failed.name, "snapshot") if failed else "snapshot"
            runner.fail(
                step,
                f"The Vertex AI pipeline job ended {status.state.lower()}: "
                f"{status.error_message or 'no reason given'}",
            )
            return True
        runner.finish_from(status)
    except UploadPending:
        # The job is done but its model upload is not: poll again, the same operation.
        return False
    except RunStopped:
        return True
    return True


class VertexRunAttempt(RunAttempt):
    """One attempt at following a run's Vertex AI PipelineJob: the shared bookkeeping,
    registration and decision, fed by the job's states and its register step's payload."""

    def mirror(self, status: PipelineJobStatus) -> None:
        for task in status.tasks:
            name = TASK_STEPS.get(task.name)
            state = TASK_STATES.get(task.state)
            if name is None or state is None:
                continue
            updates: dict[str, Any] = {"state": state}
            if task.start_time:
                updates["started_at"] = task.start_time
            if task.end_time and state != StepState.RUNNING:
                updates["finished_at"] = task.end_time
            step = self.steps[name]
            if step.state != state:
                PipelineStepRun.objects.filter(pk=step.pk).update(**updates)
                step.state = state
                self.current = name
                self.log(f"Vertex AI task {task.name}: {task.state.lower()}")
                if task.error_message:
                    self.log(task.error_message)

    def finish_from(self, status: PipelineJobStatus) -> None:
        """Register, upload, decide. Raises UploadPending while the upload's operation
        is not done: the next poll resumes it (the version is registered once)."""
        result = VertexResult.from_job(status)
        if self.run.version_id is None:
            self.begin("register")
            self.register(result)
        if self.steps["register"].state != StepState.SUCCEEDED:
            self.registry_upload(result)
            self.end("register")
        self.begin("compare")
        retraining_decide(attempt=self)

    def registration_body(self, result: Any, version: str) -> dict[str, Any]:
        body = super().registration_body(result, version)
        body["image_uri"] = settings.VERTEX_PIPELINES_IMAGE.partition("@")[0]
        body["image_digest"] = _image_digest(settings.VERTEX_PIPELINES_IMAGE)
        body["pipeline_run_id"] = result.job_name
        return body

    def lineage_note(self, version: ModelVersion, result: Any) -> str:
        return (
            f"Lineage: trained on Vertex AI Pipelines, job `{result.job_name}` (portal run "
            f"#{self.run.pk}), in image `{settings.VERTEX_PIPELINES_IMAGE}`, code "
            f"`{version.code_version[:12]}`; model file digest "
            f"`{result.artifact_digest[:19]}...`."
        )

    def registry_upload(self, result: VertexResult) -> None:
        """Upload the new version to the Vertex AI Model Registry, once.

        Uploads are not idempotent, so: the operation's name is kept on the run before
        it is waited on, and a later poll follows that operation; with no operation
        kept (a worker died between the upload and keeping it), a version already
        carrying this run's labels is taken instead of uploading again. Raises
        UploadPending while the operation is not done.
        """
        version = ModelVersion.objects.select_related("model").get(pk=self.run.version_id)
        if version.registry_resource_name:
            return
        model: RegisteredModel = version.model
        registry = vertex_registry()
        labels = {
            "portal-model": model.slug,
            "semver": version.version.replace(".", "-"),
            "portal-run": str(self.run.pk),
        }
        operation = PipelineRun.objects.values_list("registry_operation", flat=True).get(
            pk=self.run.pk
        )
        remote = None if operation else registry.version_find(labels=labels)
        if remote is None and not operation:
            operation = registry.upload_start(
                display_name=model.slug,
                artifact_uri=result.artifact_uri,
                container_image=settings.VERTEX_SERVING_IMAGE or settings.VERTEX_PIPELINES_IMAGE,
                labels=labels,
                version_description=f"Trained by portal run {self.run.pk}",
                parent_model=model.registry_resource_name,
            )
            PipelineRun.objects.filter(pk=self.run.pk).update(registry_operation=operation)
            self.log(f"uploading to the Vertex AI Model Registry: operation {operation}")
        if remote is None:
            try:
                remote = registry.upload_wait(operation, wait_seconds=UPLOAD_WAIT_SECONDS)
            except UploadPending:
                self.log("the Vertex AI Model Registry upload is still running")
                raise
        with transaction.atomic():
            ModelVersion.objects.filter(pk=version.pk).update(
                registry_resource_name=remote.resource_name,
                registry_version_id=remote.version_id,
                registry_aliases=sorted(remote.aliases),
            )
            if not model.registry_resource_name:
                RegisteredModel.objects.filter(pk=model.pk).update(
                    registry_resource_name=remote.model_resource_name
                )
                audit_record(
                    action="model.registry_linked",
                    actor=PIPELINE_ACTOR,
                    object_type="model",
                    object_id=model.slug,
                    payload={"from": "", "to": remote.model_resource_name},
                )
            audit_record(
                action="version.registry_synced",
                actor=PIPELINE_ACTOR,
                object_type=ModelVersion.AUDIT_OBJECT_TYPE,
                object_id=version.audit_id,
                payload={"how": "uploaded", "registry_resource_name": remote.resource_name},
            )
        self.log(f"uploaded to the Vertex AI Model Registry as {remote.resource_name}")

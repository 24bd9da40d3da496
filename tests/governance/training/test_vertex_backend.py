"""Training runs on Vertex AI Pipelines: the real client library against the local
stand-in that answers in Vertex AI's REST format."""

import json
from pathlib import Path

import pytest

from datasubjects.models import Suppression
from datasubjects.pseudonyms import suppression_key
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.models import Review
from governance.training.choices import RunState, RunTrigger, StepState
from governance.training.models import PipelineRun
from governance.training.services import run_execute, run_start, vertex_run_poll
from portal.audit.models import AuditEvent
from tests.fakes.storage_server import FakeStorageServer
from tests.fakes.vertex_server import FakeVertexServer
from tests.fakes.vertex_server import vertex_server as vertex_server
from tests.governance.training.conftest import CODE_VERSION, TESTER
from worker.backends.vertex_common import VertexError

pytestmark = pytest.mark.django_db
PROJECT, REGION = "zero-margin-ml", "europe-west1"
IMAGE = "europe-west1-docker.pkg.dev/zm-ml/pipelines/train@sha256:" + "c" * 64
DATA = "sha256:" + "d" * 64
KEY_SECRET = "projects/zm-ml/secrets/dsar-suppression-key/versions/3"


@pytest.fixture()
def storage(monkeypatch):
    """Cloud Storage's stand-in, holding the artifact bucket the runs upload to."""
    with FakeStorageServer() as fake:
        fake.add_bucket("zm-ml")
        monkeypatch.setenv("GCS_API_ENDPOINT", fake.url)
        yield fake


@pytest.fixture()
def vertex(vertex_server, storage, settings, tmp_path):
    settings.DSAR_SUPPRESSION_LIST = str(tmp_path / "suppression.json")
    settings.PIPELINES_BACKEND = "vertex"
    settings.GOOGLE_CLOUD_PROJECT = PROJECT
    settings.GOOGLE_CLOUD_REGION = REGION
    settings.VERTEX_API_ENDPOINT = vertex_server.url
    settings.VERTEX_PIPELINE_ROOT = "gs://zm-ml/pipeline-root"
    settings.VERTEX_ARTIFACT_ROOT = "gs://zm-ml/artifacts"
    settings.VERTEX_PIPELINES_IMAGE = IMAGE
    settings.VERTEX_SERVING_IMAGE = ""
    settings.VERTEX_SUPPRESSION_KEY_SECRET = KEY_SECRET
    settings.CODE_VERSION = CODE_VERSION
    settings.PIPELINES_RETRAIN_TOLERANCE = "0"
    return vertex_server


def _start(django_capture_on_commit_callbacks) -> PipelineRun:
    run = run_start(
        model=RegisteredModel.objects.get(slug="demand-forecasting"),
        trigger=RunTrigger.MANUAL,
        reason="retrain on the new snapshot",
        actor=TESTER,
        snapshot_id=DATA,
        queue=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        return run_execute(run_id=run.pk)


def _task(name: str, state: str, outputs: dict | None = None, error: str = "") -> dict:
    detail = {"taskName": name, "state": state, "outputs": outputs or {}}
    if error:
        detail["error"] = {"code": 9, "message": error}
    return detail


def _payload(mape: float = 0.21) -> dict:
    return {
        "artifactUri": "gs://zm-ml/artifacts/forecasting/run-1",
        "artifactDigest": "sha256:" + "e" * 64,
        "dataVersion": DATA,
        "codeVersion": CODE_VERSION,
        "metrics": {"mae": 12.5, "rmse": 18.0, "mape": mape, "baseline_mape": 0.6},
        "metricSlices": {"category": {"toys": {"mape": 0.3}}},
        "hyperparameters": {"n_estimators": 200},
        "cardFacts": {
            "data_schema": {},
            "training_data": {},
            "evaluation_data": {},
            "text": {"training_data": "Two years of daily sales per category."},
        },
    }


def _succeed(server: FakeVertexServer, job: str, payload: dict) -> None:
    outputs = {
        "registered_model": {
            "artifacts": [
                {
                    "uri": payload["artifactUri"],
                    "schemaTitle": "system.Artifact",
                    "metadata": payload,
                }
            ]
        }
    }
    tasks = [_task(n, "SUCCEEDED") for n in ("snapshot", "validate", "features", "train")]
    tasks += [_task("evaluate", "SUCCEEDED"), _task("register", "SUCCEEDED", outputs)]
    server.set_pipeline_job_state(job, "SUCCEEDED", task_details=tasks)


def test_vertex_run_submits_one_pipeline_job(
    vertex, storage, settings, django_capture_on_commit_callbacks
):
    """The job gets the run's parameters, among them the suppression list the portal
    wrote for the run and uploaded beside its artifacts, naming the suppressed
    customer's key, and the name of the secret holding the list's hashing key (never
    the key)."""
    Suppression.objects.create(customer_key="c0ffee" * 4, reason="objection", request_ref="r-1")
    run = _start(django_capture_on_commit_callbacks)
    assert run.state == RunState.RUNNING
    assert run.external_ref.endswith(f"/pipelineJobs/portal-{run.pk}")
    (submit,) = vertex.requests_to("POST", r"/pipelineJobs$")
    params = submit.body["runtimeConfig"]["parameterValues"]
    uri = f"gs://zm-ml/artifacts/suppression/portal-run-{run.pk}.json"
    assert params == {
        "model_kind": "demand-forecasting",
        "data_version": DATA,
        "code_version": CODE_VERSION,
        "artifact_root": "gs://zm-ml/artifacts",
        "suppression_list": uri,
        "suppression_key_secret": KEY_SECRET,
    }
    assert suppression_key().hex() not in json.dumps(submit.body).lower()
    assert submit.body["runtimeConfig"]["gcsOutputDirectory"] == "gs://zm-ml/pipeline-root"
    uploaded = storage.get(uri)
    assert uploaded == Path(settings.DSAR_SUPPRESSION_LIST).read_bytes()
    assert "c0ffee" * 4 in json.loads(uploaded)["purposes"]["training"]
    assert len(storage.requests_to("POST", r"^/upload/")) == 1
    (event,) = AuditEvent.objects.filter(action="pipeline_run.submitted")
    assert event.payload_record.data["suppression_list"] == uri
    written = AuditEvent.objects.get(action="suppression.list_written")
    assert written.payload_record.data["for"] == f"training run portal-run-{run.pk}"


def test_vertex_run_without_its_suppression_list_is_failed_not_submitted(
    vertex, storage, django_capture_on_commit_callbacks
):
    """The artifact bucket is unreachable (gone here): the run fails saying why and no
    job trains without the list."""
    storage.buckets.pop("zm-ml")
    run = _start(django_capture_on_commit_callbacks)
    assert run.state == RunState.FAILED
    assert "suppression list" in run.outcome and "nothing was submitted" in run.outcome
    assert not vertex.requests_to("POST", r"/pipelineJobs$")
    assert not AuditEvent.objects.filter(action="pipeline_run.submitted").exists()


def test_vertex_run_with_a_list_and_no_key_secret_is_refused_before_submitting(
    vertex, storage, settings, django_capture_on_commit_callbacks
):
    """Without VERTEX_SUPPRESSION_KEY_SECRET the job could not read the list's hashing
    key: the run fails naming the setting, and nothing is uploaded or submitted."""
    settings.VERTEX_SUPPRESSION_KEY_SECRET = ""
    run = _start(django_capture_on_commit_callbacks)
    assert run.state == RunState.FAILED
    assert "VERTEX_SUPPRESSION_KEY_SECRET" in run.outcome
    assert "Nothing was submitted" in run.outcome
    assert not storage.requests_to("POST", r"^/upload/")
    assert not vertex.requests_to("POST", r"/pipelineJobs$")
    assert not AuditEvent.objects.filter(action="pipeline_run.submitted").exists()


def test_vertex_run_retried_submit_finds_the_job(vertex, django_capture_on_commit_callbacks):
    run = _start(django_capture_on_commit_callbacks)
    # The worker died after submitting: the task is delivered again.
    with django_capture_on_commit_callbacks(execute=True):
        again = run_execute(run_id=run.pk)
    assert again.external_ref == run.external_ref
    assert len(vertex.pipeline_jobs) == 1
    assert again.attempts == 2


def test_vertex_poll_mirrors_task_states(vertex, django_capture_on_commit_callbacks):
    run = _start(django_capture_on_commit_callbacks)
    vertex.set_pipeline_job_state(
        run.external_ref,
        "RUNNING",
        task_details=[_task("snapshot", "SUCCEEDED"), _task("train", "RUNNING")],
    )
    assert vertex_run_poll(run_id=run.pk) is False
    steps = dict(run.steps.values_list("name", "state"))
    assert steps["snapshot"] == StepState.SUCCEEDED
    assert steps["train"] == StepState.RUNNING
    assert "Vertex AI task train: running" in run.steps.get(name="train").log


def test_vertex_success_registers_uploads_and_opens_a_review(
    vertex, django_capture_on_commit_callbacks
):
    run = _start(django_capture_on_commit_callbacks)
    _succeed(vertex, run.external_ref, _payload())
    with django_capture_on_commit_callbacks(execute=False):
        assert vertex_run_poll(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.outcome
    version = ModelVersion.objects.get(pk=run.version_id)
    assert version.image_digest == "sha256:" + "c" * 64
    assert version.data_version == DATA
    assert version.pipeline_run_id == run.external_ref
    assert version.metrics["mape"] == pytest.approx(0.21)
    assert version.registry_resource_name.startswith(f"projects/{PROJECT}/locations/{REGION}/")
    (upload,) = vertex.requests_to("POST", r"/models:upload$")
    assert upload.body["model"]["artifactUri"] == "gs://zm-ml/artifacts/forecasting/run-1"
    assert upload.body["model"]["labels"]["semver"] == version.version.replace(".", "-")
    assert Review.objects.filter(version=version, target="canary").exists()
    assert "Vertex AI Pipelines" in version.card.sections.get(key="training_data").content


def test_vertex_failure_fails_the_run_with_the_reason(vertex, django_capture_on_commit_callbacks):
    run = _start(django_capture_on_commit_callbacks)
    vertex.set_pipeline_job_state(
        run.external_ref,
        "FAILED",
        error={"code": 9, "message": "The DAG failed because some tasks failed."},
        task_details=[
            _task("snapshot", "SUCCEEDED"),
            _task("validate", "FAILED", error="ValidationFailed: quantity below 0 in 51 rows"),
        ],
    )
    assert vertex_run_poll(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert "ended failed" in run.outcome
    assert run.steps.get(name="validate").state == StepState.FAILED
    assert not ModelVersion.objects.filter(pipeline_run_id=run.external_ref).exists()


def test_vertex_outage_while_polling_is_retried(vertex, django_capture_on_commit_callbacks):
    from celery.exceptions import Retry

    from governance.training.tasks import vertex_poll

    run = _start(django_capture_on_commit_callbacks)
    vertex.fail("GET", r"/pipelineJobs/", status=503)
    with pytest.raises(Retry):
        vertex_poll.apply(args=[run.pk], throw=True)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING


def test_vertex_pending_upload_is_polled_again_and_uploaded_once(
    vertex, django_capture_on_commit_callbacks, monkeypatch
):
    """Vertex AI answers the model upload with an operation that is not done: the poll
    task keeps the operation, asks to be run again, and the next run follows the same
    operation to the version, so the stand-in records exactly one upload."""
    from governance.training.services import vertex as vertex_module
    from governance.training.tasks import vertex_poll

    monkeypatch.setattr(vertex_module, "UPLOAD_WAIT_SECONDS", 0)
    vertex.upload_pending_polls = 2
    run = _start(django_capture_on_commit_callbacks)
    _succeed(vertex, run.external_ref, _payload())

    with django_capture_on_commit_callbacks(execute=False):
        assert vertex_poll.apply(args=[run.pk]).get() == f"run {run.pk}: still running"
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    assert run.registry_operation.startswith(f"projects/{PROJECT}/locations/{REGION}/operations/")
    version = ModelVersion.objects.get(pk=run.version_id)
    assert version.registry_resource_name == ""

    with django_capture_on_commit_callbacks(execute=False):
        assert vertex_poll.apply(args=[run.pk]).get() == f"run {run.pk}: still running"
        assert vertex_poll.apply(args=[run.pk]).get() == f"run {run.pk}: finished"

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.outcome
    assert len(vertex.requests_to("POST", r"/models:upload$")) == 1
    assert len(vertex.requests_to("GET", r"/operations/")) == 3
    version.refresh_from_db()
    assert version.registry_resource_name.startswith(f"projects/{PROJECT}/locations/{REGION}/")
    assert ModelVersion.objects.filter(pipeline_run_id=run.external_ref).count() == 1
    assert run.steps.get(name="register").state == StepState.SUCCEEDED


def test_vertex_upload_made_by_a_worker_that_died_is_taken_not_repeated(
    vertex, django_capture_on_commit_callbacks
):
    """A worker uploaded the version and died before keeping the operation: the next
    poll finds the version by the run's labels and links it, uploading nothing again."""
    from google.auth.credentials import AnonymousCredentials

    from worker.backends.vertex_registry import VertexModelRegistry

    run = _start(django_capture_on_commit_callbacks)
    _succeed(vertex, run.external_ref, _payload())
    vertex.fail("POST", r"/models:upload$", status=503)
    with pytest.raises(VertexError):
        vertex_run_poll(run_id=run.pk)  # registered; the upload call failed
    run.refresh_from_db()
    version = ModelVersion.objects.get(pk=run.version_id)
    # The dead worker's upload, which reached Vertex AI before the worker died.
    vertex.upload_pending_polls = 0
    VertexModelRegistry(
        PROJECT, REGION, api_endpoint=vertex.url, credentials=AnonymousCredentials()
    ).upload_start(
        display_name="demand-forecasting",
        artifact_uri="gs://zm-ml/artifacts/forecasting/run-1",
        container_image=IMAGE,
        labels={
            "portal-model": "demand-forecasting",
            "semver": version.version.replace(".", "-"),
            "portal-run": str(run.pk),
        },
    )
    uploads = len(vertex.requests_to("POST", r"/models:upload$"))

    with django_capture_on_commit_callbacks(execute=False):
        assert vertex_run_poll(run_id=run.pk) is True

    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.outcome
    assert len(vertex.requests_to("POST", r"/models:upload$")) == uploads
    assert len(vertex.operations) == 1
    version.refresh_from_db()
    [(model_name, versions)] = vertex.models.items()
    assert version.registry_resource_name == f"{model_name}@{versions[0]['versionId']}"

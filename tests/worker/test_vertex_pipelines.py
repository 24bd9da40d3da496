"""The Vertex AI Pipelines adapter, through the real client library, against the local
stand-in that answers in Vertex AI's REST format; and the compiled pipeline it ships."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from google.auth.credentials import AnonymousCredentials

from tests.fakes.vertex_server import FakeVertexServer
from worker.backends.vertex_pipelines import (
    PipelineArtifact,
    PipelineJobRef,
    PipelinesUnavailable,
    PipelineTaskStatus,
    VertexPipelines,
    load_pipeline_spec,
    pipeline_job_id,
)

PROJECT = "zero-margin-ml"
LOCATION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "pipelines" / "training_pipeline.json"
PARAMETERS = {
    "model_kind": "demand-forecasting",
    "data_version": "sha256:5f2a9c",
    "code_version": "a1b2c3d",
    "artifact_root": "gs://zm-models/demand-forecasting/run-42",
    "suppression_list": "gs://zm-models/suppression/portal-run-42.json",
    "suppression_key_secret": "projects/zm-models/secrets/dsar-suppression-key/versions/3",
}
STEPS = ["snapshot", "validate", "features", "train", "evaluate", "register"]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
T1 = datetime(2025, 3, 3, 9, 2, tzinfo=UTC)
T2 = datetime(2025, 3, 3, 9, 40, tzinfo=UTC)


def pipelines_for(server: FakeVertexServer) -> VertexPipelines:
    return VertexPipelines(
        PROJECT, LOCATION, api_endpoint=server.url, credentials=AnonymousCredentials()
    )


def submit(pipelines: VertexPipelines, **overrides: object) -> PipelineJobRef:
    arguments = {
        "run_id": "42",
        "display_name": "demand-forecasting retrain",
        "template_path": TEMPLATE,
        "parameters": PARAMETERS,
        "pipeline_root": "gs://zm-pipelines/root",
        "labels": {"portal-run": "42", "model": "demand-forecasting"},
        **overrides,
    }
    return pipelines.submit(**arguments)


def task(name: str, state: str, outputs: dict | None = None, error: str = "") -> dict:
    detail = {
        "taskId": str(STEPS.index(name) + 1),
        "taskName": name,
        "state": state,
        "startTime": "2025-03-03T09:02:00Z",
        "endTime": "2025-03-03T09:10:00Z",
        "outputs": outputs or {},
    }
    if error:
        detail["error"] = {"code": 2, "message": error}
    return detail


def artifact(uri: str, schema: str, metadata: dict) -> dict:
    return {"artifacts": [{"uri": uri, "schemaTitle": schema, "metadata": metadata}]}


def test_submit_creates_pipeline_job_from_compiled_spec(vertex_server: FakeVertexServer) -> None:
    """Submit POSTs one PipelineJob to .../pipelineJobs with the run's job id, the
    compiled spec (every step on the release's image), the parameters, the pipeline
    root, labels Vertex AI accepts and the service account."""
    with time_machine.travel(T0, tick=False):
        ref = submit(
            pipelines_for(vertex_server),
            service_account="pipelines@zero-margin-ml.iam.gserviceaccount.com",
            container_image="portal-pipelines:1.4.0",
            labels={"portal-run": "42", "data-version": "sha256:5F2A9C"},
        )

    assert ref == PipelineJobRef(
        name=f"{PARENT}/pipelineJobs/portal-42",
        job_id="portal-42",
        state="QUEUED",
        created=True,
        create_time=T0,
    )
    (sent,) = vertex_server.requests
    assert (sent.method, sent.path) == ("POST", f"/v1/{PARENT}/pipelineJobs")
    assert sent.query["pipelineJobId"] == ["portal-42"]
    body = dict(sent.body)
    spec = body.pop("pipelineSpec")
    assert body == {
        "displayName": "demand-forecasting retrain",
        "labels": {"portal-run": "42", "data-version": "sha256_5f2a9c"},
        "runtimeConfig": {
            "parameterValues": PARAMETERS,
            "gcsOutputDirectory": "gs://zm-pipelines/root",
        },
        "serviceAccount": "pipelines@zero-margin-ml.iam.gserviceaccount.com",
    }
    expected = load_pipeline_spec(TEMPLATE)
    for executor in expected["deploymentSpec"]["executors"].values():
        executor["container"]["image"] = "portal-pipelines:1.4.0"
    assert spec == expected


def test_submit_retried_finds_existing_job(vertex_server: FakeVertexServer) -> None:
    """A submit retried for the same run (a worker died after the first) gets 409
    ALREADY_EXISTS, fetches the job the first attempt made, and creates no second one."""
    first = submit(pipelines_for(vertex_server))
    vertex_server.set_pipeline_job_state(first.job_id, "RUNNING")
    vertex_server.clear_requests()

    again = submit(pipelines_for(vertex_server))

    assert again.name == first.name
    assert again.created is False
    assert again.state == "RUNNING"
    assert [(r.method, r.path) for r in vertex_server.requests] == [
        ("POST", f"/v1/{PARENT}/pipelineJobs"),
        ("GET", f"/v1/{PARENT}/pipelineJobs/portal-42"),
    ]
    assert list(vertex_server.pipeline_jobs) == [first.name]


def test_submit_other_run_creates_other_job(vertex_server: FakeVertexServer) -> None:
    """Two runs are two jobs: the id comes from the run."""
    one = submit(pipelines_for(vertex_server), run_id="42")
    two = submit(pipelines_for(vertex_server), run_id="43")

    assert (one.job_id, two.job_id) == ("portal-42", "portal-43")
    assert two.created is True
    assert len(vertex_server.pipeline_jobs) == 2


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({**PARAMETERS, "learning_rate": 0.1}, "declares no parameter learning_rate"),
        ({k: v for k, v in PARAMETERS.items() if k != "data_version"}, "needs parameter data_v"),
        ({**PARAMETERS, "code_version": 123}, "code_version must be STRING"),
    ],
)
def test_submit_refuses_parameters_the_pipeline_does_not_take(
    vertex_server: FakeVertexServer, parameters: dict, message: str
) -> None:
    """Unknown, missing or mistyped parameters are refused before anything is sent."""
    with pytest.raises(ValueError, match=message):
        submit(pipelines_for(vertex_server), parameters=parameters)

    assert vertex_server.requests == []


def test_submit_on_503_raises_pipelines_unavailable(vertex_server: FakeVertexServer) -> None:
    """An outage on create is ours to retry: PipelinesUnavailable, no job behind it."""
    vertex_server.fail("POST", "/pipelineJobs$", status=503, message="Backend unavailable.")

    with pytest.raises(PipelinesUnavailable) as caught:
        submit(pipelines_for(vertex_server))

    assert caught.value.status == "UNAVAILABLE"
    assert caught.value.retryable is True
    assert caught.value.reason == "Backend unavailable."
    assert vertex_server.pipeline_jobs == {}


def test_get_state_follows_queued_running_succeeded(vertex_server: FakeVertexServer) -> None:
    """get_state reads GET .../pipelineJobs/{id} through QUEUED, RUNNING and SUCCEEDED,
    and on success gives the steps, artifacts, metrics and the registered version."""
    pipelines = pipelines_for(vertex_server)
    with time_machine.travel(T0, tick=False):
        ref = submit(pipelines)

    queued = pipelines.get_state(ref.name)
    assert (queued.state, queued.is_terminal, queued.start_time) == ("QUEUED", False, None)

    vertex_server.set_pipeline_job_state(
        ref.job_id, "RUNNING", at=T1, task_details=[task("snapshot", "RUNNING")]
    )
    running = pipelines.get_state(ref.job_id)
    assert (running.state, running.start_time, running.end_time) == ("RUNNING", T1, None)
    assert [(t.name, t.state) for t in running.tasks] == [("snapshot", "RUNNING")]

    model_name = f"{PARENT}/models/1001@4"
    vertex_server.set_pipeline_job_state(
        ref.job_id,
        "SUCCEEDED",
        at=T2,
        task_details=[
            *(task(step, "SUCCEEDED") for step in STEPS[:4]),
            task(
                "evaluate",
                "SUCCEEDED",
                {
                    "metrics": artifact(
                        "gs://zm-pipelines/root/evaluate/metrics",
                        "system.Metrics",
                        {"mae": 12.5, "mape": 0.081, "rmse": 17.25, "display_name": "metrics"},
                    )
                },
            ),
            task(
                "register",
                "SUCCEEDED",
                {
                    "registered_model": artifact(
                        "gs://zm-models/demand-forecasting/run-42",
                        "system.Artifact",
                        {"resourceName": model_name},
                    )
                },
            ),
        ],
    )
    done = pipelines.get_state(ref.name)

    assert done.state == "SUCCEEDED"
    assert done.is_terminal is True
    assert (done.create_time, done.start_time, done.end_time) == (T0, T1, T2)
    assert done.error_message == ""
    assert done.error_code is None
    assert [t.name for t in done.tasks] == STEPS
    assert {t.state for t in done.tasks} == {"SUCCEEDED"}
    assert done.model_resource_name == model_name
    assert done.metrics == {"mae": 12.5, "mape": 0.081, "rmse": 17.25}
    assert (
        PipelineArtifact(
            task_name="register",
            output_name="registered_model",
            uri="gs://zm-models/demand-forecasting/run-42",
            schema_title="system.Artifact",
            metadata={"resourceName": model_name},
        )
        in done.artifacts
    )
    sent = vertex_server.requests_to("GET")
    assert {r.path for r in sent} == {f"/v1/{PARENT}/pipelineJobs/portal-42"}
    assert len(sent) == 3


def test_get_state_of_failed_job_carries_error(vertex_server: FakeVertexServer) -> None:
    """A FAILED job gives Vertex AI's error and the step that failed, no model."""
    pipelines = pipelines_for(vertex_server)
    ref = submit(pipelines)
    reason = "validate: 12 rows with a null store_id in transactions"
    vertex_server.set_pipeline_job_state(
        ref.job_id,
        "FAILED",
        at=T2,
        error={"code": 9, "message": f"The DAG failed because some tasks failed. {reason}"},
        task_details=[task("snapshot", "SUCCEEDED"), task("validate", "FAILED", error=reason)],
    )

    failed = pipelines.get_state(ref.name)

    assert failed.state == "FAILED"
    assert failed.is_terminal is True
    assert failed.error_code == 9
    assert reason in failed.error_message
    assert failed.end_time == T2
    assert failed.tasks[1] == PipelineTaskStatus(
        name="validate",
        state="FAILED",
        error_message=reason,
        start_time=datetime(2025, 3, 3, 9, 2, tzinfo=UTC),
        end_time=datetime(2025, 3, 3, 9, 10, tzinfo=UTC),
    )
    assert failed.model_resource_name is None
    assert failed.metrics == {}


def test_get_state_of_unknown_job_raises_not_found(vertex_server: FakeVertexServer) -> None:
    """A job Vertex AI does not know surfaces as NOT_FOUND, not retryable."""
    with pytest.raises(PipelinesUnavailable) as caught:
        pipelines_for(vertex_server).get_state(f"{PARENT}/pipelineJobs/portal-404")

    assert caught.value.status == "NOT_FOUND"
    assert caught.value.retryable is False
    assert "portal-404" in caught.value.reason


def test_get_state_on_503_raises_pipelines_unavailable(vertex_server: FakeVertexServer) -> None:
    """An outage while following a job is PipelinesUnavailable, and the next poll works."""
    pipelines = pipelines_for(vertex_server)
    ref = submit(pipelines)
    vertex_server.fail("GET", "/pipelineJobs/", status=503, message="Try again later.")

    with pytest.raises(PipelinesUnavailable) as caught:
        pipelines.get_state(ref.name)

    assert (caught.value.status, caught.value.http_status) == ("UNAVAILABLE", 503)
    assert caught.value.reason == "Try again later."
    assert pipelines.get_state(ref.name).state == "QUEUED"


def test_cancel_posts_cancel_and_job_goes_cancelled(vertex_server: FakeVertexServer) -> None:
    """cancel POSTs .../pipelineJobs/{id}:cancel with an empty body; the job passes
    through CANCELLING to CANCELLED."""
    pipelines = pipelines_for(vertex_server)
    ref = submit(pipelines)
    vertex_server.set_pipeline_job_state(ref.job_id, "RUNNING")
    vertex_server.clear_requests()

    pipelines.cancel(ref.name)

    (sent,) = vertex_server.requests
    assert (sent.method, sent.path) == ("POST", f"/v1/{PARENT}/pipelineJobs/portal-42:cancel")
    assert sent.body == {}
    assert pipelines.get_state(ref.name).state == "CANCELLING"
    vertex_server.set_pipeline_job_state(ref.job_id, "CANCELLED")
    cancelled = pipelines.get_state(ref.name)
    assert (cancelled.state, cancelled.is_terminal) == ("CANCELLED", True)


def test_cancel_finished_job_raises_failed_precondition(vertex_server: FakeVertexServer) -> None:
    """Cancelling a job that already ended is refused by Vertex AI, and said so."""
    pipelines = pipelines_for(vertex_server)
    ref = submit(pipelines)
    vertex_server.set_pipeline_job_state(ref.job_id, "SUCCEEDED")

    with pytest.raises(PipelinesUnavailable) as caught:
        pipelines.cancel(ref.job_id)

    assert caught.value.status == "FAILED_PRECONDITION"
    assert caught.value.retryable is False
    assert vertex_server.pipeline_job(ref.job_id)["state"] == "PIPELINE_STATE_SUCCEEDED"


@pytest.mark.parametrize(
    "run_id",
    ["42", "0b9c4f5e-7d1a-4c8e-9f00-1a2b3c4d5e6f", "Run_42/Retry", "x" * 300],
)
def test_pipeline_job_id_is_stable_and_valid(run_id: str) -> None:
    """The job id for a run is always the same and always one Vertex AI accepts."""
    job_id = pipeline_job_id(run_id)

    assert job_id == pipeline_job_id(run_id)
    assert re.fullmatch(r"[a-z][-a-z0-9]{0,126}", job_id)


def test_pipeline_job_id_is_shorter_than_128_characters() -> None:
    """A fitting id of 127 characters is kept as it is; one of 128 is shortened (with
    the hash of the whole) to fit, as Vertex AI refuses ids of 128 characters."""
    fits = pipeline_job_id("a" * (127 - len("portal-")))
    assert fits == "portal-" + "a" * 120 and len(fits) == 127

    shortened = pipeline_job_id("a" * (128 - len("portal-")))
    assert len(shortened) <= 127
    assert re.fullmatch(r"[a-z][-a-z0-9]{0,126}", shortened)
    assert shortened != fits


def test_pipeline_job_id_keeps_lossy_run_ids_apart() -> None:
    """Run ids that slug alike still get different jobs."""
    assert pipeline_job_id("Run_42") != pipeline_job_id("run-42")
    assert pipeline_job_id("a" * 300) != pipeline_job_id("a" * 301)
    assert pipeline_job_id("42", prefix="portal-staging") == "portal-staging-42"


def test_compiled_pipeline_declares_steps_in_order_and_parameters() -> None:
    """The shipped definition is a KFP v2 PipelineSpec with the six steps in order
    (snapshot → validate → features → train → evaluate → register), the six run
    parameters, and each step calling its pipelines.vertex_steps function."""
    raw = json.loads(TEMPLATE.read_text())
    spec = load_pipeline_spec(TEMPLATE)

    assert raw is not None and spec["schemaVersion"].startswith("2.")
    assert spec["pipelineInfo"]["name"] == "portal-training"
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == set(PARAMETERS)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == set(STEPS)
    upstream = {name: set(t.get("dependentTasks", [])) for name, t in tasks.items()}
    assert upstream == {
        "snapshot": set(),
        "validate": {"snapshot"},
        "features": {"snapshot", "validate"},
        "train": {"features"},
        "evaluate": {"features", "train"},
        "register": {"evaluate", "train"},
    }
    for step in STEPS:
        component = spec["components"][tasks[step]["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        assert container["image"]
        assert f"vertex_steps.{step}(" in "\n".join(container["command"])
    # The suppression list is optional (a portal keeping none hands ""), and reaches the
    # snapshot step, which leaves the listed customers out.
    # So is the name of the Secret Manager secret version holding the list's hashing key
    # (the key itself is never a parameter: whoever can view the job sees those).
    snapshot_code = "\n".join(
        spec["deploymentSpec"]["executors"]["exec-snapshot"]["container"]["command"]
    )
    for parameter in ("suppression_list", "suppression_key_secret"):
        declared = spec["root"]["inputDefinitions"]["parameters"][parameter]
        assert declared == {"defaultValue": "", "isOptional": True, "parameterType": "STRING"}
        wired = tasks["snapshot"]["inputs"]["parameters"][parameter]
        assert wired == {"componentInputParameter": parameter}
        assert f"{parameter}={parameter}" in snapshot_code
    component_inputs = spec["components"]["comp-snapshot"]["inputDefinitions"]["parameters"]
    assert component_inputs["suppression_key_secret"] == {"parameterType": "STRING"}
    for step in STEPS[1:]:
        assert "suppression_key_secret" not in tasks[step]["inputs"].get("parameters", {})
    register_outputs = spec["components"]["comp-register"]["outputDefinitions"]["artifacts"]
    assert "registered_model" in register_outputs
    metrics_output = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert metrics_output["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"

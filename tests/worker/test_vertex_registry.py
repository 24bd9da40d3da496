"""The Vertex AI Model Registry adapter, through the real client library, against the
local stand-in that answers in Vertex AI's REST format."""

import socket
from datetime import UTC, datetime

import pytest
import time_machine
from google.auth.credentials import AnonymousCredentials

from tests.fakes.vertex_server import FakeVertexServer
from worker.backends.vertex_pipelines import pipeline_labels
from worker.backends.vertex_registry import (
    RegistryModel,
    RegistryUnavailable,
    RegistryVersion,
    UploadPending,
    VertexModelRegistry,
)

PROJECT = "zero-margin-ml"
LOCATION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
T1 = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)


def registry_for(server: FakeVertexServer, **kwargs: object) -> VertexModelRegistry:
    return VertexModelRegistry(
        PROJECT, LOCATION, api_endpoint=server.url, credentials=AnonymousCredentials(), **kwargs
    )


def add_version(server: FakeVertexServer, model_id: str, **kwargs: object) -> dict:
    fields = {"display_name": model_id, **kwargs}
    return server.add_model_version(project=PROJECT, location=LOCATION, model_id=model_id, **fields)


def test_list_models_reads_every_page(vertex_server: FakeVertexServer) -> None:
    """ListModels is followed through nextPageToken, each page a GET on .../models."""
    vertex_server.page_size = 2
    with time_machine.travel(T0, tick=False):
        add_version(
            vertex_server,
            "1001",
            display_name="demand-forecasting",
            description="Daily sales per category",
            labels={"portal-model": "demand-forecasting"},
        )
        add_version(vertex_server, "1002", display_name="customer-segmentation")
        add_version(vertex_server, "1003", display_name="product-recommendation")

    models = registry_for(vertex_server).list_models()

    assert [m.display_name for m in models] == [
        "demand-forecasting",
        "customer-segmentation",
        "product-recommendation",
    ]
    assert models[0] == RegistryModel(
        resource_name=f"{PARENT}/models/1001",
        model_id="1001",
        display_name="demand-forecasting",
        description="Daily sales per category",
        labels={"portal-model": "demand-forecasting"},
        default_version_id="1",
        create_time=T0,
        update_time=T0,
    )
    sent = vertex_server.requests_to("GET")
    assert [r.path for r in sent] == [f"/v1/{PARENT}/models", f"/v1/{PARENT}/models"]
    assert sent[0].query["pageSize"] == ["100"]
    assert "pageToken" not in sent[0].query
    assert sent[1].query["pageToken"] == ["offset-2"]
    assert sent[0].body is None


def test_list_models_passes_filter(vertex_server: FakeVertexServer) -> None:
    """A ListModels filter goes out as the `filter` query parameter."""
    registry_for(vertex_server).list_models(filter='labels.portal-model="demand-forecasting"')

    (sent,) = vertex_server.requests_to("GET", "/models$")
    assert sent.query["filter"] == ['labels.portal-model="demand-forecasting"']


def test_list_versions_maps_every_field_across_pages(vertex_server: FakeVertexServer) -> None:
    """ListModelVersions (GET .../models/{id}:listVersions) is paged through, and each
    version keeps its id, aliases, labels, times, artifact and image."""
    vertex_server.page_size = 2
    with time_machine.travel(T0, tick=False):
        add_version(
            vertex_server,
            "1001",
            display_name="demand-forecasting",
            description="Daily sales per category",
            version_description="forecasting-v1",
            aliases=["production"],
            labels={"data-version": "snap-2025-02", "code-version": "a1b2c3d"},
            artifact_uri="gs://zm-models/demand/v1",
            image_uri="europe-docker.pkg.example/serving/demand@sha256:aaa",
        )
    with time_machine.travel(T1, tick=False):
        for version in ("v2", "v3"):
            add_version(
                vertex_server,
                "1001",
                display_name="demand-forecasting",
                description="Daily sales per category",
                version_description=f"forecasting-{version}",
                labels={"data-version": f"snap-{version}"},
                artifact_uri=f"gs://zm-models/demand/{version}",
            )

    versions = registry_for(vertex_server, page_size=2).list_versions(f"{PARENT}/models/1001")

    assert [v.version_id for v in versions] == ["1", "2", "3"]
    assert versions[0] == RegistryVersion(
        resource_name=f"{PARENT}/models/1001@1",
        model_resource_name=f"{PARENT}/models/1001",
        model_id="1001",
        version_id="1",
        display_name="demand-forecasting",
        description="Daily sales per category",
        version_description="forecasting-v1",
        aliases=("default", "production"),
        labels={"data-version": "snap-2025-02", "code-version": "a1b2c3d"},
        create_time=T0,
        update_time=T0,
        artifact_uri="gs://zm-models/demand/v1",
        container_image="europe-docker.pkg.example/serving/demand@sha256:aaa",
    )
    assert versions[2].resource_name == f"{PARENT}/models/1001@3"
    assert versions[2].aliases == ()
    assert versions[2].container_image == ""
    assert versions[2].create_time == T1
    sent = vertex_server.requests_to("GET")
    assert [r.path for r in sent] == [f"/v1/{PARENT}/models/1001:listVersions"] * 2
    assert [r.query.get("pageToken") for r in sent] == [None, ["offset-2"]]
    assert sent[0].query["pageSize"] == ["2"]


def test_set_aliases_merges_and_moves_alias(vertex_server: FakeVertexServer) -> None:
    """Promotion sends one MergeVersionAliases: added aliases as they are, removed ones
    with a leading dash; Vertex AI moves `production` off the version that held it."""
    add_version(vertex_server, "1001", aliases=["production"])
    add_version(vertex_server, "1001", aliases=["canary"])

    version = registry_for(vertex_server).set_aliases(
        f"{PARENT}/models/1001@2", add=["production"], remove=["canary"]
    )

    (sent,) = vertex_server.requests_to("POST")
    assert sent.path == f"/v1/{PARENT}/models/1001@2:mergeVersionAliases"
    assert sent.raw_path == f"/v1/{PARENT}/models/1001%402:mergeVersionAliases"
    assert sent.body == {"versionAliases": ["production", "-canary"]}
    assert version.resource_name == f"{PARENT}/models/1001@2"
    assert version.aliases == ("production",)
    assert vertex_server.version(f"{PARENT}/models/1001@1")["versionAliases"] == ["default"]


@pytest.mark.parametrize(
    ("name", "add", "remove", "message"),
    [
        (f"{PARENT}/models/1001", ["production"], [], "names no version"),
        (f"{PARENT}/models/1001@1", [], [], "at least one alias"),
        (f"{PARENT}/models/1001@1", ["Production!"], [], "not a valid"),
        (f"{PARENT}/models/1001@1", ["canary"], ["canary"], "both added and removed"),
    ],
)
def test_set_aliases_refuses_bad_request_without_calling(
    vertex_server: FakeVertexServer, name: str, add: list, remove: list, message: str
) -> None:
    """A request Vertex AI would reject or silently cancel out is refused before sending."""
    add_version(vertex_server, "1001")

    with pytest.raises(ValueError, match=message):
        registry_for(vertex_server).set_aliases(name, add=add, remove=remove)

    assert vertex_server.requests == []


def test_list_models_on_503_raises_registry_unavailable(vertex_server: FakeVertexServer) -> None:
    """A 503 from Vertex AI becomes RegistryUnavailable with Google's reason, retryable."""
    vertex_server.fail("GET", "/models$", status=503, message="Vertex AI is resting.")

    with pytest.raises(RegistryUnavailable) as caught:
        registry_for(vertex_server).list_models()

    error = caught.value
    assert error.status == "UNAVAILABLE"
    assert error.http_status == 503
    assert error.reason == "Vertex AI is resting."
    assert error.retryable is True
    assert "list models" in str(error)
    assert "Vertex AI is resting." in str(error)


def test_list_versions_of_unknown_model_raises_not_found(vertex_server: FakeVertexServer) -> None:
    """A model Vertex AI does not know is a NOT_FOUND that is not worth retrying."""
    with pytest.raises(RegistryUnavailable) as caught:
        registry_for(vertex_server).list_versions(f"{PARENT}/models/999")

    assert caught.value.status == "NOT_FOUND"
    assert caught.value.http_status == 404
    assert caught.value.retryable is False
    assert f"{PARENT}/models/999" in caught.value.reason


def test_set_aliases_refused_by_vertex_raises_registry_unavailable(
    vertex_server: FakeVertexServer,
) -> None:
    """A refused merge (here: no permission) surfaces with its status and reason."""
    add_version(vertex_server, "1001")
    vertex_server.fail(
        "POST",
        ":mergeVersionAliases$",
        status=403,
        message="Permission 'aiplatform.models.update' denied.",
    )

    with pytest.raises(RegistryUnavailable) as caught:
        registry_for(vertex_server).set_aliases(f"{PARENT}/models/1001@1", add=["canary"])

    assert caught.value.status == "PERMISSION_DENIED"
    assert "aiplatform.models.update" in caught.value.reason
    assert vertex_server.version(f"{PARENT}/models/1001@1")["versionAliases"] == ["default"]


def test_unreachable_registry_raises_registry_unavailable() -> None:
    """No server listening is a CONNECTION failure, retryable, not a library traceback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    registry = VertexModelRegistry(
        PROJECT,
        LOCATION,
        api_endpoint=f"http://127.0.0.1:{port}",
        credentials=AnonymousCredentials(),
        timeout=5,
    )

    with pytest.raises(RegistryUnavailable) as caught:
        registry.list_models()

    assert caught.value.status == "CONNECTION"
    assert caught.value.retryable is True


def test_upload_version_adds_a_version_to_an_existing_model(
    vertex_server: FakeVertexServer,
) -> None:
    """UploadModel (a long-running operation) under the parent model; the new version is
    returned as listed afterwards, with its labels and container image."""
    add_version(vertex_server, "1001", display_name="demand-forecasting")
    uploaded = registry_for(vertex_server).upload_version(
        display_name="demand-forecasting",
        artifact_uri="gs://zm-ml/artifacts/forecasting/run-7",
        container_image="europe-docker.pkg.dev/zm-ml/serving/forecasting@sha256:" + "a" * 64,
        labels={"portal-model": "demand-forecasting", "semver": "2-2-0"},
        parent_model=f"{PARENT}/models/1001",
    )
    assert uploaded.resource_name == f"{PARENT}/models/1001@2"
    assert uploaded.labels["semver"] == "2-2-0"
    (call,) = vertex_server.requests_to("POST", r"/models:upload$")
    assert call.body["parentModel"] == f"{PARENT}/models/1001"
    assert call.body["model"]["artifactUri"] == "gs://zm-ml/artifacts/forecasting/run-7"
    assert call.body["model"]["containerSpec"]["imageUri"].endswith("a" * 64)


def test_upload_version_cleans_labels_as_pipeline_labels_are(
    vertex_server: FakeVertexServer,
) -> None:
    """Model labels go through the same cleaning as pipeline job labels (lowercase,
    other characters `_`, 63 characters): Vertex AI refuses anything else."""
    raw = {"portal-model": "Demand.Forecasting", "semver": "2.2.0", "note": "x" * 80}

    uploaded = registry_for(vertex_server).upload_version(
        display_name="demand-forecasting",
        artifact_uri="gs://zm-ml/artifacts/forecasting/run-8",
        container_image="europe-docker.pkg.dev/zm-ml/serving/forecasting@sha256:" + "b" * 64,
        labels=raw,
    )

    cleaned = {"portal-model": "demand_forecasting", "semver": "2_2_0", "note": "x" * 63}
    assert cleaned == pipeline_labels(raw)
    (call,) = vertex_server.requests_to("POST", r"/models:upload$")
    assert call.body["model"]["labels"] == cleaned
    assert uploaded.labels == cleaned


def test_upload_pending_operation_is_followed_to_its_version_without_a_second_upload(
    vertex_server: FakeVertexServer,
) -> None:
    """UploadModel answers with an operation that is not done (as Vertex AI usually
    does): the upload is started once, its operation polled by name until done, and
    only then does the version exist; waiting too briefly says pending, not failed."""
    vertex_server.upload_pending_polls = 2
    registry = registry_for(vertex_server)

    name = registry.upload_start(
        display_name="demand-forecasting",
        artifact_uri="gs://zm-ml/artifacts/forecasting/run-9",
        container_image="europe-docker.pkg.dev/zm-ml/serving/forecasting@sha256:" + "c" * 64,
    )
    assert name.startswith(f"{PARENT}/operations/")
    assert vertex_server.models == {}
    with pytest.raises(UploadPending) as caught:
        registry.upload_wait(name, wait_seconds=0)
    assert caught.value.operation_name == name
    assert registry.upload_result(name) is None
    uploaded = registry.upload_result(name)

    assert uploaded is not None
    assert uploaded.artifact_uri == "gs://zm-ml/artifacts/forecasting/run-9"
    assert len(vertex_server.requests_to("POST", r"/models:upload$")) == 1
    polls = vertex_server.requests_to("GET", r"/operations/")
    assert len(polls) == 3 and {p.path for p in polls} == {f"/ui/{name}"}


def test_upload_version_failure_is_ours(vertex_server: FakeVertexServer) -> None:
    vertex_server.fail("POST", r"/models:upload$", status=503)
    with pytest.raises(RegistryUnavailable) as excinfo:
        registry_for(vertex_server).upload_version(
            display_name="x", artifact_uri="gs://b/x", container_image="img"
        )
    assert excinfo.value.retryable

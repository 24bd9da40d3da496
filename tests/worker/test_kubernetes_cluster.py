"""The cluster reader of the deployment reconciler, through the official `kubernetes`
client against the local stand-in of the API server: which requests it sends, which
images it reports with which digest, and that any failed list is an error, never half
a picture."""

import pytest

from tests.fakes.kubernetes_server import FakeKubernetesServer
from worker.backends import kubernetes_cluster
from worker.backends.kubernetes_cluster import ClusterUnavailable, RunningImage, running_images

IMAGE = "europe-west1-docker.pkg.dev/zm-mlops-prod/models/model-server"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
GOVERNED = {"model-governance/target": "production", "model-governance/model": "demand-forecasting"}


@pytest.fixture()
def cluster():
    fake = FakeKubernetesServer().start()
    fake.add_namespace("ml-demand-forecasting", **GOVERNED)
    fake.add_namespace("governance-portal")
    yield fake
    fake.stop()


def test_running_images_reports_the_pulled_digest_of_every_container_in_governed_namespaces(
    cluster,
):
    """Namespaces are chosen by their labels; every container of their pods is reported
    with the digest the kubelet pulled, not the tag the spec names; pods outside
    governed namespaces are never listed."""
    cluster.add_pod(
        "ml-demand-forecasting",
        "model-server-1",
        image=f"{IMAGE}:2.1.0",
        image_id=f"{IMAGE}@{DIGEST_A}",
        init_images=(f"busybox@{DIGEST_B}",),
    )
    cluster.add_pod("governance-portal", "web-1", image="portal:1", image_id=f"portal@{DIGEST_B}")

    images = running_images(api_url=cluster.url)

    assert images == [
        RunningImage(
            namespace="ml-demand-forecasting",
            pod="model-server-1",
            container="init-0",
            model="demand-forecasting",
            target="production",
            image=f"busybox@{DIGEST_B}",
            digest=DIGEST_B,
        ),
        RunningImage(
            namespace="ml-demand-forecasting",
            pod="model-server-1",
            container="model-server",
            model="demand-forecasting",
            target="production",
            image=f"{IMAGE}:2.1.0",
            digest=DIGEST_A,
        ),
    ]
    listed = [request.path for request in cluster.requests]
    assert listed == ["/api/v1/namespaces", "/api/v1/namespaces/ml-demand-forecasting/pods"]
    assert cluster.requests[0].query["labelSelector"] == [
        "model-governance/target,model-governance/model"
    ]


def test_running_images_takes_the_spec_digest_of_a_pod_not_started_and_skips_finished_pods(
    cluster,
):
    """A pending pod's container has no pulled image yet: its pinned digest counts (it
    is about to run); a tag-only image not pulled yet has no digest; a finished pod
    runs nothing."""
    cluster.add_pod(
        "ml-demand-forecasting", "pending", image=f"{IMAGE}@{DIGEST_B}", phase="Pending"
    )
    cluster.add_pod("ml-demand-forecasting", "tagged", image=f"{IMAGE}:latest", phase="Pending")
    cluster.add_pod(
        "ml-demand-forecasting",
        "done",
        image=f"{IMAGE}:1",
        image_id=f"{IMAGE}@{DIGEST_A}",
        phase="Succeeded",
    )

    found = {image.pod: image.digest for image in running_images(api_url=cluster.url)}

    assert found == {"pending": DIGEST_B, "tagged": ""}


def test_running_images_follows_the_api_servers_continue_token(cluster, monkeypatch):
    monkeypatch.setattr(kubernetes_cluster, "PAGE_SIZE", 2)
    for index in range(5):
        cluster.add_pod(
            "ml-demand-forecasting", f"pod-{index}", image=IMAGE, image_id=f"{IMAGE}@{DIGEST_A}"
        )

    images = running_images(api_url=cluster.url)

    assert sorted(image.pod for image in images) == [f"pod-{index}" for index in range(5)]
    pod_pages = [r.query for r in cluster.requests if r.path.endswith("/pods")]
    assert [page.get("continue") for page in pod_pages] == [None, ["2"], ["4"]]
    assert all(page["limit"] == ["2"] for page in pod_pages)


@pytest.mark.parametrize(
    ("status", "words"), [(403, "403 Forbidden"), (401, "401 Unauthorized"), (503, "503")]
)
def test_running_images_refuses_half_a_picture_when_a_list_fails(cluster, status, words):
    """RBAC refusing the pods of one namespace, bad credentials or an API server away:
    an error, not the namespaces that did answer."""
    cluster.add_namespace(
        "ml-customer-segmentation", **{**GOVERNED, "model-governance/model": "cs"}
    )
    cluster.add_pod("ml-demand-forecasting", "a", image=IMAGE, image_id=f"{IMAGE}@{DIGEST_A}")
    cluster.fail(r"^/api/v1/namespaces/ml-demand-forecasting/pods$", status, "no", times=None)

    with pytest.raises(ClusterUnavailable, match=words):
        running_images(api_url=cluster.url)


def test_running_images_says_when_the_api_server_cannot_be_reached(cluster):
    url = cluster.url
    cluster.stop()

    with pytest.raises(ClusterUnavailable, match="cannot be reached"):
        running_images(api_url=url, timeout=2)


def test_running_images_in_cluster_outside_a_pod_says_so(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    with pytest.raises(ClusterUnavailable, match="not running in a cluster"):
        running_images(api_url="in-cluster")

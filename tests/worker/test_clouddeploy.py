"""The Cloud Deploy approvals adapter, with the real google-cloud-deploy client pointed at
a local stand-in server speaking Cloud Deploy's REST format."""

import socket

import pytest
from google.auth.credentials import AnonymousCredentials

from tests.fakes.clouddeploy_server import FakeCloudDeployServer
from worker.backends.clouddeploy import (
    CloudDeployApprovals,
    CloudDeployUnavailable,
    ReleaseInfo,
    RolloutInfo,
)

RELEASE = "projects/zm-ml-prod/locations/europe-west1/deliveryPipelines/recommender/releases/rel-42"
ROLLOUT = f"{RELEASE}/rollouts/rel-42-to-production-0001"
DIGEST = "sha256:" + "3f" * 32


@pytest.fixture()
def fake():
    with FakeCloudDeployServer() as server:
        server.add_release(
            RELEASE,
            labels={"model": "product-recommendation", "team": "mlops"},
            annotations={
                "model-governance/model": "product-recommendation",
                "model-governance/version": "2.1.0",
            },
            images={"recommender": f"europe-docker.pkg.dev/zm-ml-prod/models/recommender@{DIGEST}"},
        )
        server.add_rollout(RELEASE, "rel-42-to-production-0001", target_id="production")
        yield server


@pytest.fixture()
def approvals(fake):
    return CloudDeployApprovals(api_endpoint=fake.url, credentials=AnonymousCredentials())


def test_rollout_get_reads_the_rollout_at_its_resource_path(fake, approvals):
    info = approvals.rollout_get(ROLLOUT)

    assert info == RolloutInfo(
        name=ROLLOUT,
        uid=fake.rollout(ROLLOUT)["uid"],
        release_name=RELEASE,
        target_id="production",
        approval_state="NEEDS_APPROVAL",
        state="PENDING_APPROVAL",
        approve_time=None,
        labels={},
        annotations={},
    )
    assert info.needs_approval
    [request] = fake.requests
    assert (request.method, request.path) == ("GET", f"/v1/{ROLLOUT}")
    assert request.body is None


def test_release_get_reads_model_version_and_image_digest(fake, approvals):
    info = approvals.release_get(RELEASE)

    assert isinstance(info, ReleaseInfo)
    assert info.model == "product-recommendation"
    assert info.model_version == "2.1.0"
    assert info.image_digests == (DIGEST,)
    assert info.labels == {"model": "product-recommendation", "team": "mlops"}
    assert info.annotations["model-governance/version"] == "2.1.0"
    assert [(r.method, r.path) for r in fake.requests] == [("GET", f"/v1/{RELEASE}")]


def test_release_get_falls_back_to_labels_without_annotations(fake, approvals):
    other = RELEASE.replace("rel-42", "rel-43")
    fake.add_release(other, labels={"model": "demand-forecasting", "model-version": "3"})

    info = approvals.release_get(other)

    assert (info.model, info.model_version, info.image_digests) == ("demand-forecasting", "3", ())


def test_rollout_approve_posts_approved_true_to_the_approve_path(fake, approvals):
    info = approvals.rollout_approve(ROLLOUT, approved=True)

    [approve] = fake.requests_to("POST")
    assert approve.path == f"/v1/{ROLLOUT}:approve"
    assert approve.body == {"approved": True}
    assert info.approval_state == "APPROVED"
    assert info.state == "IN_PROGRESS"
    assert info.approve_time is not None
    assert fake.rollout(ROLLOUT)["approvalState"] == "APPROVED"


def test_rollout_approve_false_rejects_the_rollout(fake, approvals):
    info = approvals.rollout_approve(ROLLOUT, approved=False)

    [approve] = fake.requests_to("POST")
    assert approve.path == f"/v1/{ROLLOUT}:approve"
    # proto3 JSON omits a false boolean: the body says nothing, which means "reject".
    assert approve.body == {}
    assert (info.approval_state, info.state) == ("REJECTED", "APPROVAL_REJECTED")
    assert fake.rollout(ROLLOUT)["approvalState"] == "REJECTED"


def test_rollout_approve_twice_is_refused_and_not_retryable(fake, approvals):
    approvals.rollout_approve(ROLLOUT, approved=True)

    with pytest.raises(CloudDeployUnavailable) as caught:
        approvals.rollout_approve(ROLLOUT, approved=True)

    assert caught.value.retryable is False
    assert caught.value.status_code == 400
    assert "not awaiting approval" in str(caught.value)
    assert len(fake.requests_to("POST", r":approve$")) == 2


def test_rollout_get_unknown_rollout_is_not_found_and_not_retryable(fake, approvals):
    with pytest.raises(CloudDeployUnavailable) as caught:
        approvals.rollout_get(ROLLOUT.replace("0001", "0002"))

    assert (caught.value.status_code, caught.value.retryable) == (404, False)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retryable_and_not_retried_by_the_client(fake, approvals, status):
    """The client's own retry is off: one request, and the caller's task decides."""
    fake.fail("GET", r"/rollouts/", status=status, times=None)

    with pytest.raises(CloudDeployUnavailable) as caught:
        approvals.rollout_get(ROLLOUT)

    assert caught.value.retryable is True
    assert caught.value.status_code == status
    assert len(fake.requests_to("GET", r"/rollouts/")) == 1


def test_failed_approval_is_retryable_and_leaves_the_rollout_waiting(fake, approvals):
    fake.fail("POST", r":approve$", status=503)

    with pytest.raises(CloudDeployUnavailable) as caught:
        approvals.rollout_approve(ROLLOUT, approved=True)
    assert caught.value.retryable is True
    assert fake.rollout(ROLLOUT)["approvalState"] == "NEEDS_APPROVAL"

    assert approvals.rollout_approve(ROLLOUT, approved=True).approval_state == "APPROVED"


def test_aborted_conflict_is_retryable_but_already_exists_is_final(fake, approvals):
    """Cloud Deploy answers 409 both for ABORTED (a concurrent change: try again) and
    ALREADY_EXISTS; only the body's status tells them apart."""
    fake.fail("POST", r":approve$", status=409, status_name="ABORTED", message="Etag changed.")

    with pytest.raises(CloudDeployUnavailable) as caught:
        approvals.rollout_approve(ROLLOUT, approved=True)
    assert (caught.value.status_code, caught.value.retryable) == (409, True)
    assert "ABORTED" in str(caught.value)
    assert fake.rollout(ROLLOUT)["approvalState"] == "NEEDS_APPROVAL"

    fake.fail("GET", r"/rollouts/", status=409, status_name="ALREADY_EXISTS")
    with pytest.raises(CloudDeployUnavailable) as caught:
        approvals.rollout_get(ROLLOUT)
    assert (caught.value.status_code, caught.value.retryable) == (409, False)


def test_timeout_is_retryable():
    """A server that accepts the connection and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        approvals = CloudDeployApprovals(
            api_endpoint=f"http://127.0.0.1:{port}",
            credentials=AnonymousCredentials(),
            timeout=0.2,
        )
        with pytest.raises(CloudDeployUnavailable) as caught:
            approvals.rollout_get(ROLLOUT)

    assert caught.value.retryable is True
    assert caught.value.status_code is None


def test_connection_refused_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    approvals = CloudDeployApprovals(
        api_endpoint=f"http://127.0.0.1:{port}", credentials=AnonymousCredentials(), timeout=2
    )

    with pytest.raises(CloudDeployUnavailable) as caught:
        approvals.rollout_get(ROLLOUT)

    assert caught.value.retryable is True


@pytest.mark.parametrize(
    "name",
    [
        "rel-42-to-production-0001",
        f"{RELEASE}/rollouts/",
        f"{RELEASE}/rollouts/a/b",
        "projects/p/locations/l/deliveryPipelines/dp/releases/r/rollouts/x:approve",
        "projects/p/locations/l/deliveryPipelines/dp/releases/r/rollouts/x?y=1",
    ],
)
def test_malformed_rollout_names_are_refused_before_any_request(fake, approvals, name):
    with pytest.raises(ValueError, match="not a Cloud Deploy rollout name"):
        approvals.rollout_get(name)
    with pytest.raises(ValueError, match="not a Cloud Deploy rollout name"):
        approvals.rollout_approve(name, approved=True)

    assert fake.requests == []

"""The Cloud Deploy rollout backend, with the real google-cloud-deploy client pointed at
the local stand-in speaking Cloud Deploy's REST format: the exact requests for a
canary taken phase by phase to stable, a rollback, an approval Cloud Deploy asks for,
an outage retried, a failure mirrored, and repeats that change nothing."""

import pytest
from google.auth.credentials import AnonymousCredentials

from tests.fakes.clouddeploy_server import FakeCloudDeployServer
from worker.backends.rollouts import (
    PHASE_CANARY,
    PHASE_PROMOTE,
    PHASE_REVERT,
    RolloutBackendError,
    RolloutOutsideFailed,
    RolloutPlan,
)
from worker.backends.rollouts_clouddeploy import CloudDeployRolloutBackend, resource_id

PIPELINE = "projects/zm-ml/locations/europe-west1/deliveryPipelines/ml-models"
RELEASE = f"{PIPELINE}/releases/product-recommendation-v-2-1-0-r-7"
ROLLOUT = f"{RELEASE}/rollouts/ml-canary-r-7"
DIGEST = "sha256:" + "3f" * 32
IMAGE = "europe-docker.pkg.dev/zm-ml/serving/model-server"


@pytest.fixture()
def fake():
    with FakeCloudDeployServer() as server:
        yield server


@pytest.fixture()
def backend(fake):
    return CloudDeployRolloutBackend(
        pipeline_template=PIPELINE,
        target_ids={"canary": "ml-canary", "production": "ml-production"},
        image_name="model-server",
        skaffold_config_uri="gs://zm-ml-deploy/model-server/source.tgz",
        skaffold_config_path="deploy/models/skaffold/{model}.yaml",
        api_endpoint=fake.url,
        credentials=AnonymousCredentials(),
        poll_seconds=0.01,
        ready_timeout=5,
        backoff_seconds=0.01,
        attempts=3,
    )


def plan(phase: str = PHASE_CANARY, weight: int = 10, external_ref: str = "") -> RolloutPlan:
    return RolloutPlan(
        rollout_id=7,
        model="product-recommendation",
        kind="recommendation",
        target="canary",
        phase=phase,
        version="2.1.0",
        artifact_uri="gs://zm-models/product-recommendation/2.1.0",
        image_digest=DIGEST,
        stable_version="2.0.0",
        stable_artifact_uri="gs://zm-models/product-recommendation/2.0.0",
        weight=weight,
        external_ref=external_ref,
        image_uri=IMAGE,
        steps=(10, 50, 100),
    )


def calls(fake) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests]


def test_first_step_creates_the_release_of_the_digest_and_the_rollout(fake, backend):
    """The release pins the approved image digest and names the model and version; the
    rollout goes to the target's Cloud Deploy id; the first canary phase deployed."""
    assert backend.apply(plan()) == ROLLOUT
    assert calls(fake) == [
        ("POST", f"/v1/{PIPELINE}/releases"),
        ("GET", f"/v1/{RELEASE}"),
        ("POST", f"/v1/{RELEASE}/rollouts"),
        ("GET", f"/v1/{ROLLOUT}"),
    ]
    create_release, _, create_rollout, _ = fake.requests
    assert create_release.query["releaseId"] == ["product-recommendation-v-2-1-0-r-7"]
    assert create_release.body == {
        "description": "product-recommendation 2.1.0 (portal rollout 7)",
        "annotations": {
            "model-governance/model": "product-recommendation",
            "model-governance/version": "2.1.0",
            "model-governance/rollout": "7",
        },
        "labels": {"model": "product-recommendation"},
        "buildArtifacts": [{"image": "model-server", "tag": f"{IMAGE}@{DIGEST}"}],
        "skaffoldConfigUri": "gs://zm-ml-deploy/model-server/source.tgz",
        "skaffoldConfigPath": "deploy/models/skaffold/product-recommendation.yaml",
    }
    assert create_rollout.query["rolloutId"] == ["ml-canary-r-7"]
    assert create_rollout.body == {
        "targetId": "ml-canary",
        "annotations": {"model-governance/rollout": "7"},
    }


def test_steps_advance_phase_by_phase_then_promote(fake, backend):
    """50% advances to canary-50, 100% to stable; promote finds stable deployed; a
    repeated apply of the same step sends no advance."""
    backend.apply(plan())
    fake.requests.clear()
    backend.apply(plan(weight=50))
    advances = fake.requests_to("POST", r":advance$")
    assert [(r.path, r.body) for r in advances] == [
        (f"/v1/{ROLLOUT}:advance", {"phaseId": "canary-50"})
    ]
    fake.requests.clear()
    backend.apply(plan(weight=50))  # a worker killed after the advance repeats the step
    assert fake.requests_to("POST", r":advance$") == []
    assert [m for m, _ in calls(fake)].count("POST") == 2  # the creates, answered 409
    backend.apply(plan(weight=100))
    assert fake.requests_to("POST", r":advance$")[-1].body == {"phaseId": "stable"}
    assert fake.rollout(ROLLOUT)["state"] == "SUCCEEDED"
    fake.requests.clear()
    assert backend.apply(plan(PHASE_PROMOTE, 100, ROLLOUT)) == ROLLOUT
    assert fake.requests_to("POST", r":advance$") == []


def test_revert_rolls_the_target_back_once(fake, backend):
    """rollbackTarget on the pipeline with a rollback rollout id fixed by the portal's
    rollout, naming the rollout to roll back; a repeat is answered 409 and accepted."""
    backend.apply(plan(weight=10))
    fake.requests.clear()
    assert backend.apply(plan(PHASE_REVERT, 10, ROLLOUT)) == ROLLOUT
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", f"/v1/{PIPELINE}:rollbackTarget")
    assert request.body == {
        "targetId": "ml-canary",
        "rolloutId": "rollback-r-7-ml-canary",
        "rolloutToRollBack": "ml-canary-r-7",
    }
    assert fake.rollout(ROLLOUT)["state"] == "CANCELLED"
    backend.apply(plan(PHASE_REVERT, 10, ROLLOUT))  # repeated: ALREADY_EXISTS, no error
    assert len(fake.requests_to("POST", r":rollbackTarget$")) == 2


def test_revert_before_anything_reached_cloud_deploy_sends_nothing(fake, backend):
    assert backend.apply(plan(PHASE_REVERT, 10, "")) == ""
    assert fake.requests == []


def test_outage_is_retried_within_the_call(fake, backend):
    """Two 503s on creating the release, then it works: three POSTs, one release."""
    fake.fail("POST", r"/releases$", status=503, times=2)
    assert backend.apply(plan()) == ROLLOUT
    posts = fake.requests_to("POST", r"/releases$")
    assert len(posts) == 3 and posts[0].body == posts[2].body
    assert list(fake.releases) == [RELEASE]


def test_outage_that_outlasts_the_retries_leaves_it_to_the_next_tick(fake, backend):
    """503 every time: RolloutBackendError after three attempts (the rollout stays
    unsynced); once Cloud Deploy is back the next apply goes on from where it was."""
    fake.fail("POST", r"/rollouts$", status=503, times=None)
    with pytest.raises(RolloutBackendError, match="after 3 attempts") as failed:
        backend.apply(plan())
    assert not isinstance(failed.value, RolloutOutsideFailed)
    assert len(fake.requests_to("POST", r"/rollouts$")) == 3
    fake.clear_failures()
    fake.requests.clear()
    assert backend.apply(plan()) == ROLLOUT
    assert calls(fake)[0] == ("POST", f"/v1/{PIPELINE}/releases")  # answered 409: exists
    assert ("POST", f"/v1/{RELEASE}/rollouts") in calls(fake)


def test_refusal_is_not_retried(fake, backend):
    """A 403 will not change on retry: one attempt, RolloutBackendError."""
    fake.fail("POST", r"/releases$", status=403, message="caller lacks clouddeploy.releases.create")
    with pytest.raises(RolloutBackendError, match="403"):
        backend.apply(plan())
    assert len(fake.requests) == 1


def test_rollout_waiting_for_approval_is_approved(fake, backend):
    """The target needs approval in Cloud Deploy: the backend approves (the portal's
    gate was checked when the rollout started) and the first phase deploys."""
    fake.approval_targets.add("ml-canary")
    backend.apply(plan())
    [approve] = fake.requests_to("POST", r":approve$")
    assert (approve.path, approve.body) == (f"/v1/{ROLLOUT}:approve", {"approved": True})
    assert fake.rollout(ROLLOUT)["approvalState"] == "APPROVED"


def test_failed_rollout_in_cloud_deploy_is_mirrored(fake, backend):
    """Cloud Deploy failed the rollout's phase: RolloutOutsideFailed with its reason."""
    backend.apply(plan())
    fake.finish_phase(ROLLOUT, "canary-10", "FAILED")
    with pytest.raises(RolloutOutsideFailed, match="FAILED: phase canary-10 failed"):
        backend.apply(plan(weight=50))
    assert fake.requests_to("POST", r":advance$") == []


def test_steps_go_to_the_first_phase_that_covers_them(fake, backend):
    """A 10/25/50 pipeline under the portal's 10/50/100: 50% advances through canary-25
    to canary-50, one phase at a time; 100% is stable."""
    fake.canary_percentages = (10, 25, 50)
    backend.apply(plan())
    backend.apply(plan(weight=50))
    advances = [r.body["phaseId"] for r in fake.requests_to("POST", r":advance$")]
    assert advances == ["canary-25", "canary-50"]
    backend.apply(plan(weight=100))
    assert fake.requests_to("POST", r":advance$")[-1].body == {"phaseId": "stable"}


def test_standard_strategy_target_reaches_stable_at_every_step(fake, backend):
    """A target without canary phases: its one phase, stable, serves each step."""
    fake.canary_percentages = ()
    assert backend.apply(plan()) == ROLLOUT
    assert fake.requests_to("POST", r":advance$") == []
    assert fake.rollout(ROLLOUT)["phases"] == [{"id": "stable", "state": "SUCCEEDED"}]
    assert backend.apply(plan(weight=50)) == ROLLOUT  # a succeeded rollout is no failure


def test_resource_ids_fit_cloud_deploys_rules():
    assert resource_id("v", "2.1.0+build.7", "r", 12) == "v-2-1-0-build-7-r-12"
    assert resource_id("9lives") == "r-9lives"
    assert len(resource_id("x" * 100)) == 63

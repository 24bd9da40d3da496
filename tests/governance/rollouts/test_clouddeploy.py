"""Rollouts driven through Cloud Deploy (ROLLOUTS_BACKEND=clouddeploy) against the
local stand-in: the first tick creates the release and rollout and the rollout is
progressing with Cloud Deploy's reference; a person's rollback rolls the target back;
a failure reported by Cloud Deploy fails the portal's rollout, rolls back and opens an
incident."""

import pytest
from google.auth.credentials import AnonymousCredentials

from governance.choices import Target
from governance.rollouts.choices import RolloutState
from governance.rollouts.services import rollout_rollback, rollout_start, rollout_tick
from monitoring.models import Incident
from tests.fakes.clouddeploy_server import FakeCloudDeployServer
from worker.backends.rollouts_clouddeploy import CloudDeployRolloutBackend

pytestmark = pytest.mark.django_db
PIPELINE = "projects/zm-ml/locations/europe-west1/deliveryPipelines/customer-segmentation"
SLOW = {"steps": [10, 50, 100], "bake_seconds": 3600, "thresholds": {}}


@pytest.fixture()
def fake():
    with FakeCloudDeployServer() as server:
        yield server


@pytest.fixture()
def backend(fake, settings):
    settings.ROLLOUTS_BACKEND = "clouddeploy"
    return CloudDeployRolloutBackend(
        pipeline_template="projects/zm-ml/locations/europe-west1/deliveryPipelines/{model}",
        target_ids={"canary": "ml-canary"},
        image_name="model-server",
        api_endpoint=fake.url,
        credentials=AnonymousCredentials(),
        poll_seconds=0.01,
        ready_timeout=5,
        backoff_seconds=0.01,
    )


def test_rollout_through_cloud_deploy_starts_and_rolls_back(
    fake, backend, rollout_versions, devops
):
    rollout = rollout_start(
        version=rollout_versions[1],
        target=Target.CANARY,
        actor=devops.audit_actor(),
        strategy=SLOW,
        queue=False,
    )
    assert rollout.backend == "clouddeploy"
    rollout = rollout_tick(rollout_id=rollout.pk, backend=backend)
    assert (rollout.state, rollout.synced) == (RolloutState.PROGRESSING, True)
    assert rollout.external_ref == (
        f"{PIPELINE}/releases/customer-segmentation-v-1-1-0-r-{rollout.pk}"
        f"/rollouts/ml-canary-r-{rollout.pk}"
    )
    release = fake.requests_to("POST", r"/releases$")[0].body
    assert release["buildArtifacts"][0]["tag"].endswith(rollout_versions[1].image_digest)

    rollout_rollback(rollout=rollout, actor=devops.audit_actor(), reason="manual")
    rollout = rollout_tick(rollout_id=rollout.pk, backend=backend)
    assert (rollout.state, rollout.synced) == (RolloutState.ROLLED_BACK, True)
    [rollback] = fake.requests_to("POST", r":rollbackTarget$")
    assert rollback.body["targetId"] == "ml-canary"


def test_failure_in_cloud_deploy_fails_the_rollout_and_rolls_back(
    fake, backend, rollout_versions, devops
):
    rollout = rollout_start(
        version=rollout_versions[1],
        target=Target.CANARY,
        actor=devops.audit_actor(),
        strategy=SLOW,
        queue=False,
    )
    rollout = rollout_tick(rollout_id=rollout.pk, backend=backend)
    fake.finish_phase(rollout.external_ref, "canary-10", "FAILED")
    # The next tick reads Cloud Deploy's state before analysing: the rollout fails and
    # its target is rolled back in the same turn.
    rollout = rollout_tick(rollout_id=rollout.pk, backend=backend)
    assert (rollout.state, rollout.synced) == (RolloutState.FAILED, True)
    assert "phase canary-10 failed its verification" in rollout.outcome
    assert len(fake.requests_to("POST", r":rollbackTarget$")) == 1
    incident = Incident.objects.get(fingerprint=f"rollout-{rollout.pk}-rolled-back")
    assert incident.severity == "critical"

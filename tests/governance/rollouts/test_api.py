"""The rollouts API: CI starts a rollout after the gate, reads it, rolls it back; the
refusals (no approval, second active rollout, wrong role) and the JSON error shape."""

import pytest

from governance.choices import Target
from governance.models import RegisteredModel, TargetAssignment
from governance.rollouts.choices import RolloutState
from governance.rollouts.models import Rollout
from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.security.models import RefusalWindow
from tests.factories.registry import ModelVersionFactory

pytestmark = pytest.mark.django_db
MODEL = "customer-segmentation"


@pytest.fixture()
def versions(approved_for):
    model = RegisteredModel.objects.get(slug=MODEL)
    stable = ModelVersionFactory(model=model, version="1.0.0", version_minor=0)
    canary = ModelVersionFactory(model=model, version="1.1.0", version_minor=1)
    TargetAssignment.objects.create(model=model, target=Target.CANARY, version=stable)
    approved_for(canary, Target.STAGING)
    approved_for(canary, Target.CANARY)
    return stable, canary


@pytest.fixture()
def bearer(client, make_user):
    def make(*roles: str, scopes=("rollouts:read", "rollouts:write")):
        issued = apitoken_create(
            name="ci",
            owner=make_user(*roles),
            scopes=list(scopes),
            expires_at=None,
            actor=Actor.system("tests"),
        )
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {issued.secret}"
        return client

    return make


def _start(client, version: str = "1.1.0"):
    return client.post(
        "/api/v1/rollouts",
        {"model": MODEL, "version": version, "target": "canary"},
        content_type="application/json",
    )


def test_rollouts_api_start_read_and_roll_back(bearer, versions):
    """An approved version starts (201, pending, 10% first, the gate's attestation), is
    read back with its steps, and rolls back with a reason."""
    client = bearer(Role.DEVOPS)
    answer = _start(client)
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["model"], body["version"], body["stable_version"]) == (MODEL, "1.1.0", "1.0.0")
    assert (body["state"], body["weight"], body["synced"]) == ("pending", 10, False)
    assert body["attestation"].count(".") == 2
    assert answer["Location"] == body["url"]
    got = client.get(body["url"]).json()
    assert got["steps"][0]["weight"] == 10
    rolled = client.post(
        f"{body['url']}/rollback", {"reason": "bad"}, content_type="application/json"
    )
    assert rolled.status_code == 200
    assert rolled.json()["state"] == RolloutState.ROLLED_BACK
    assert rolled.json()["outcome"] == "bad"


def test_rollouts_api_unapproved_version_is_403_and_audited(bearer, versions):
    """A version without the board's approval for the target: 403 naming why, no
    rollout, a `rollout.refused` event."""
    ModelVersionFactory(model=versions[0].model, version="1.2.0", version_minor=2)
    answer = _start(bearer(Role.DEVOPS), "1.2.0")
    assert answer.status_code == 403
    assert "has not approved" in answer.json()["error"]
    assert not Rollout.objects.exists()
    assert AuditEvent.objects.filter(action="rollout.refused").count() == 1


def test_rollouts_api_second_active_rollout_is_409(bearer, versions):
    """One active rollout per model and target."""
    client = bearer(Role.DEVOPS)
    assert _start(client).status_code == 201
    answer = _start(client)
    assert answer.status_code == 409
    assert answer.json()["error"] == f"A rollout of {MODEL} to canary is active."


def test_rollouts_api_rolling_back_an_ended_rollout_is_409_naming_its_state(bearer, versions):
    """Rolling back a rollout already rolled back is a conflict with its state: 409, the
    JSON error body names the state, and the rollout (outcome, finish time) is as the
    first rollback left it."""
    client = bearer(Role.DEVOPS)
    url = _start(client).json()["url"]
    first = client.post(f"{url}/rollback", {"reason": "bad"}, content_type="application/json")
    assert first.status_code == 200
    ended = Rollout.objects.values().get()
    again = client.post(f"{url}/rollback", {"reason": "worse"}, content_type="application/json")
    assert again.status_code == 409
    assert again.json() == {
        "error": "This rollout is rolled back: it cannot roll back now.",
        "fields": {},
        "state": RolloutState.ROLLED_BACK,
    }
    assert Rollout.objects.values().get() == ended
    assert not RefusalWindow.objects.exists()


def test_rollouts_api_refuses_wrong_role_and_bad_input(bearer, versions):
    """A data science lead's token may read but not start; bad input is a 400 naming
    the field; an unknown rollout a 404."""
    client = bearer(Role.DATA_SCIENCE_LEAD, scopes=("rollouts:read",))
    assert _start(client).status_code == 403
    client = bearer(Role.DEVOPS)
    answer = client.post(
        "/api/v1/rollouts", {"model": MODEL, "target": "moon"}, content_type="application/json"
    )
    assert answer.status_code == 400
    assert set(answer.json()["fields"]) == {"version", "target"}
    assert client.get("/api/v1/rollouts/999").status_code == 404


def test_rollouts_api_refusal_is_counted_once_in_the_refusal_windows(bearer, versions):
    """A rollout refusal is counted through portal.security like every refusal: one
    window `domain.rollout_no_gate` against the token, not a second access window."""
    ModelVersionFactory(model=versions[0].model, version="1.2.0", version_minor=2)
    client = bearer(Role.DEVOPS)
    assert _start(client, "1.2.0").status_code == 403
    assert _start(client, "1.2.0").status_code == 403
    window = RefusalWindow.objects.get()
    assert (window.kind, window.count) == ("domain.rollout_no_gate", 2)
    assert window.source.startswith("token:")
    assert window.event.action == "rollout.refused"

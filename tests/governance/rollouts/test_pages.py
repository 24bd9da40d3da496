"""The rollout pages: the list (filters, paging, empty state, query count), one
rollout (steps, weights, analysis, decisions), a person's decisions with their
refusals, starting a rollout from the portal, the model page's targets, and the
canary thresholds of each target."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.choices import Target
from governance.models import RegisteredModel, TargetAssignment
from governance.rollouts.choices import RolloutState
from governance.rollouts.models import CanaryPolicy, Rollout
from monitoring.choices import IncidentSource, Severity
from monitoring.models import Incident
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.notify.models import EmailNotification, WebhookDelivery, WebhookEndpoint
from portal.security.models import RefusalWindow
from tests.factories.registry import ModelVersionFactory, RegisteredModelFactory
from tests.factories.rollouts import RolloutFactory, measures
from tests.governance.rollouts.conftest import MODEL

pytestmark = pytest.mark.django_db


@pytest.fixture()
def reader(make_user):
    return make_user(Role.DATA_SCIENCE_LEAD)


def _paused_with_analysis() -> Rollout:
    """A rollout paused at its second step after the first passed."""
    rollout = RolloutFactory(step_index=1, state=RolloutState.PAUSED)
    step = rollout.step_records.get(index=1)
    step.result = "inconclusive"
    step.analysis = {
        "result": "inconclusive",
        "reasons": ["too little traffic: canary: 3 requests, fewer than 20"],
        "measures": measures(),
    }
    step.save()
    return rollout


def test_rollout_list_filters_by_model_target_and_state(client_for, reader):
    """Only the rollouts matching every filter are listed."""
    kept = RolloutFactory(state=RolloutState.SUCCEEDED, step_index=2)
    other_state = RolloutFactory(version__model=kept.model, state=RolloutState.ROLLED_BACK)
    other_target = RolloutFactory(
        version__model=kept.model, state=RolloutState.SUCCEEDED, target=Target.PRODUCTION
    )
    other_model = RolloutFactory(state=RolloutState.SUCCEEDED)
    page = client_for(reader).get(
        "/rollouts/", {"model": kept.model.slug, "target": "canary", "state": "succeeded"}
    )
    body = page.content.decode()
    assert f'href="/rollouts/{kept.pk}/"' in body
    for hidden in (other_state, other_target, other_model):
        assert f'href="/rollouts/{hidden.pk}/"' not in body


def test_rollout_list_empty_says_how_to_start(client_for, reader, devops):
    """No rollout: the page says how one starts; DevOps gets the start form, others not."""
    body = client_for(reader).get("/rollouts/").content.decode()
    assert "No rollout matches" in body and "POST /api/v1/rollouts" in body
    assert 'data-testid="start-rollout"' not in body
    assert 'data-testid="start-rollout"' in client_for(devops).get("/rollouts/").content.decode()


def test_rollout_list_paginates(client_for, reader):
    """25 a page, the filters kept in the page links."""
    model = RegisteredModelFactory()
    for _ in range(26):
        RolloutFactory(version__model=model, state=RolloutState.ABORTED)
    first = client_for(reader).get("/rollouts/", {"state": "aborted"}).content.decode()
    assert first.count('data-testid="rollout-row"') == 25
    assert "state=aborted&amp;page=2" in first
    second = client_for(reader).get("/rollouts/", {"state": "aborted", "page": 2})
    assert second.content.decode().count('data-testid="rollout-row"') == 1


@pytest.mark.parametrize("count", [1, 3])
def test_rollout_list_query_count_does_not_grow(client_for, reader, count):
    """The same number of queries for one rollout as for three."""
    client = client_for(reader)
    for _ in range(count):
        RolloutFactory(state=RolloutState.SUCCEEDED, step_index=2)
    client.get("/rollouts/")  # session and roles cached like any later page
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/rollouts/")
    assert page.content.decode().count('data-testid="rollout-row"') == count
    assert len(queries) == 6, [q["sql"] for q in queries]


def test_rollout_detail_shows_steps_weights_analysis_and_decisions(client_for, reader):
    """The steps as a progress bar (passed, current, to come), the weights of both
    versions, the analysis reasons, the chart data in a JSON block and the timeline."""
    rollout = _paused_with_analysis()
    audit_record(
        action="rollout.paused",
        actor=Actor.system("rollouts"),
        object_type="rollout",
        object_id=rollout.pk,
        payload={"state": "paused", "weight": 50},
    )
    page = client_for(reader).get(f"/rollouts/{rollout.pk}/")
    body = page.content.decode()
    assert 'data-testid="step-0"' in body and "result-pass" in body
    assert 'class="rollout-step result-inconclusive current"' in body
    assert "too little traffic: canary: 3 requests" in body
    assert 'class="rollout-step result-pending" data-testid="step-2"' in body
    assert '<progress max="100" value="50">' in body and "<strong>50%</strong>" in body
    data = json.loads(
        body.split('id="rollout-analysis-data" type="application/json">')[1].split("</script>")[0]
    )
    assert data["steps"] == ["step 1 (10%)", "step 2 (50%)"]
    assert data["results"] == ["pass", "inconclusive"]
    assert [m["key"] for m in data["measures"]][:1] == ["error_rate"]
    assert "<code>rollout.paused</code>" in body
    assert "js/rollout-charts.js" in body and "<script>" not in body


def test_rollout_detail_query_count_does_not_grow_with_steps(client_for, reader):
    """One query for the steps, one for the timeline, whatever their length."""
    client = client_for(reader)
    one = RolloutFactory(step_index=0)
    three = RolloutFactory(step_index=2)
    client.get(f"/rollouts/{one.pk}/")
    counts = []
    for rollout in (one, three):
        with CaptureQueriesContext(connection) as queries:
            client.get(f"/rollouts/{rollout.pk}/")
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_rollout_detail_decision_buttons_are_for_devops_only(client_for, reader, devops):
    """DevOps sees promote, abort and roll back on a paused rollout, each with its
    confirmation; a data science lead sees none."""
    rollout = _paused_with_analysis()
    body = client_for(devops).get(f"/rollouts/{rollout.pk}/").content.decode()
    for verb in ("promote", "abort", "rollback"):
        assert f'data-testid="action-{verb}"' in body
    assert 'data-testid="action-pause"' not in body
    assert 'data-confirm="Promote' in body and 'data-confirm="Roll back' in body
    body = client_for(reader).get(f"/rollouts/{rollout.pk}/").content.decode()
    assert 'data-testid="rollout-actions"' not in body


def test_rollout_rollback_by_devops_reverts_notifies_and_opens_an_incident(client_for, devops):
    """Rolled back from the page (htmx): the state changes, the decision is audited with
    the reason, DevOps is e-mailed, a subscribed webhook gets `rollout.finished`, and a
    warning incident (source canary analysis) records the rollback."""
    WebhookEndpoint.objects.create(
        name="ops",
        url="https://hooks.example.com/x",
        secret="s" * 32,
        format="json",
        event_types=["rollout.finished"],
    )
    rollout = RolloutFactory(step_index=1)
    answer = client_for(devops).post(
        f"/rollouts/{rollout.pk}/rollback/", {"reason": "latency on call"}, HTTP_HX_REQUEST="true"
    )
    assert answer["HX-Redirect"] == f"/rollouts/{rollout.pk}/"
    rollout.refresh_from_db()
    assert (rollout.state, rollout.synced, rollout.outcome) == (
        RolloutState.ROLLED_BACK,
        False,
        "latency on call",
    )
    event = AuditEvent.objects.get(action="rollout.rolled_back", object_id=str(rollout.pk))
    assert event.payload_record.data["reason"] == "latency on call"
    assert (
        EmailNotification.objects.filter(recipient=devops, event_type="rollout.finished").count()
        == 1
    )
    delivery = WebhookDelivery.objects.get(event_type="rollout.finished")
    assert json.loads(delivery.body)["data"]["transition"] == "rollout.rolled_back"
    incident = Incident.objects.get(fingerprint=f"rollout-{rollout.pk}-rolled-back")
    assert (incident.source, incident.severity, incident.model) == (
        IncidentSource.CANARY_ANALYSIS,
        Severity.WARNING,
        rollout.model,
    )
    assert incident.actions.get().reference == f"rollout:{rollout.pk}"
    assert AuditEvent.objects.filter(action="incident.opened", object_id=str(incident.pk)).exists()


def test_rollout_abort_opens_no_incident(client_for, devops):
    """Aborting sends traffic back too, but it is a person's choice, not a failure."""
    rollout = RolloutFactory()
    client_for(devops).post(f"/rollouts/{rollout.pk}/abort/")
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ABORTED
    assert not Incident.objects.exists()


@pytest.mark.parametrize("verb", ["promote", "pause", "abort", "rollback"])
def test_rollout_decision_by_wrong_role_is_refused_and_counted_once(client_for, reader, verb):
    """A data science lead's decision: 403, the rollout unchanged, one `rollout.refused`
    counted through portal.security (shown on the refusals page), not counted twice."""
    rollout = _paused_with_analysis() if verb == "promote" else RolloutFactory()
    before = Rollout.objects.values().get(pk=rollout.pk)
    answer = client_for(reader).post(f"/rollouts/{rollout.pk}/{verb}/")
    assert answer.status_code == 403
    assert Rollout.objects.values().get(pk=rollout.pk) == before
    window = RefusalWindow.objects.get()
    assert (window.kind, window.count, window.source) == (
        "domain.rollout_forbidden",
        1,
        f"user:{reader.audit_actor().id}",
    )
    assert window.event.action == "rollout.refused"
    assert window.event.payload_record.data["verb"] in (verb, "roll back")


def test_rollout_decision_unknown_verb_or_rollout_is_404(client_for, devops):
    """A verb that is no decision, or a rollout that does not exist, is a 404 (not a
    refusal counted against DevOps); the rollout is unchanged."""
    rollout = RolloutFactory()
    before = Rollout.objects.values().get(pk=rollout.pk)
    client = client_for(devops)
    assert client.post(f"/rollouts/{rollout.pk}/resume/").status_code == 404
    assert client.post(f"/rollouts/{rollout.pk + 1000}/promote/").status_code == 404
    assert Rollout.objects.values().get(pk=rollout.pk) == before
    assert not RefusalWindow.objects.exists()


@pytest.mark.parametrize(
    ("state", "verb", "message"),
    [
        (RolloutState.PROGRESSING, "promote", "This rollout is progressing: it cannot promote"),
        (RolloutState.SUCCEEDED, "promote", "This rollout is succeeded: it cannot promote"),
        (RolloutState.PAUSED, "pause", "This rollout is paused for a decision: it cannot pause"),
        (RolloutState.ROLLED_BACK, "rollback", "This rollout is rolled back: it cannot roll back"),
        (RolloutState.ABORTED, "abort", "This rollout is aborted: it cannot abort"),
    ],
)
def test_rollout_decision_in_wrong_state_is_a_409_saying_why(
    client_for, devops, state, verb, message
):
    """A decision the rollout's state does not allow (promoting a progressing or
    finished rollout, pausing a paused one, rolling back or aborting an ended one) is a
    conflict: 409, the rollout's page naming its state, nothing changed, and no
    security refusal counted (the person may decide; the rollout moved on)."""
    rollout = RolloutFactory(state=state)
    before = Rollout.objects.values().get(pk=rollout.pk)
    answer = client_for(devops).post(f"/rollouts/{rollout.pk}/{verb}/", {"reason": "again"})
    assert answer.status_code == 409
    error = answer.content.decode().split('data-testid="decision-error">')[1]
    assert error.startswith(message)
    assert Rollout.objects.values().get(pk=rollout.pk) == before
    assert not RefusalWindow.objects.exists()


def test_rollout_start_from_the_portal(client_for, devops, rollout_versions):
    """DevOps starts an approved version: the rollout exists, its page is shown."""
    answer = client_for(devops).post(
        "/rollouts/start/", {"model": MODEL, "version": "1.1.0", "target": "canary"}
    )
    rollout = Rollout.objects.get()
    assert answer["Location"] == f"/rollouts/{rollout.pk}/"
    assert (rollout.state, rollout.weight, rollout.version) == ("pending", 10, rollout_versions[1])


def test_rollout_start_of_unapproved_version_is_a_field_error(client_for, devops, rollout_versions):
    """Not approved for the target: 400 with the gate's reason beside the version, no
    rollout, the refusal counted; an unknown version is a field error too."""
    ModelVersionFactory(model=rollout_versions[0].model, version="1.2.0", version_minor=2)
    client = client_for(devops)
    answer = client.post(
        "/rollouts/start/", {"model": MODEL, "version": "1.2.0", "target": "canary"}
    )
    assert answer.status_code == 400
    assert "has not approved" in answer.context["start_form"].errors["version"][0]
    assert not Rollout.objects.exists()
    assert RefusalWindow.objects.get().kind == "domain.rollout_no_gate"
    answer = client.post("/rollouts/start/", {"model": MODEL, "version": "9.9.9", "target": "moon"})
    assert set(answer.context["start_form"].errors) == {"target"}


def test_rollout_start_by_wrong_role_is_refused(client_for, reader, rollout_versions):
    answer = client_for(reader).post(
        "/rollouts/start/", {"model": MODEL, "version": "1.1.0", "target": "canary"}
    )
    assert answer.status_code == 403
    assert not Rollout.objects.exists()
    assert RefusalWindow.objects.get().kind == "domain.rollout_forbidden"


def test_second_active_rollout_from_the_portal_is_refused(client_for, devops, rollout_versions):
    """A second active rollout of the model to the target is a conflict: 409, the reason
    beside the version, no second rollout, the refusal counted."""
    client = client_for(devops)
    data = {"model": MODEL, "version": "1.1.0", "target": "canary"}
    client.post("/rollouts/start/", data)
    answer = client.post("/rollouts/start/", data)
    assert answer.status_code == 409
    assert "is active" in answer.context["start_form"].errors["version"][0]
    assert Rollout.objects.count() == 1
    assert RefusalWindow.objects.get().kind == "domain.rollout_active"


def test_model_page_shows_the_canary_serving_beside_stable(client_for, reader):
    """The canary target's box names the stable version and the active canary with its
    share of traffic, linking to the rollout."""
    rollout = RolloutFactory(step_index=1)
    TargetAssignment.objects.create(
        model=rollout.model, target=Target.CANARY, version=rollout.stable_version
    )
    body = client_for(reader).get(f"/models/{rollout.model.slug}/").content.decode()
    box = body.split('data-testid="target-rollout-canary"')[1].split("</a>")[0]
    assert f"canary {rollout.version.version} at 50%" in box
    assert f'href="/rollouts/{rollout.pk}/"' in box
    assert 'data-testid="target-rollout-production"' not in body


def test_canary_thresholds_set_by_lead_are_audited_and_used(
    client_for, reader, devops, rollout_versions
):
    """A data science lead sets the canary target's thresholds: saved, audited with the
    values before and after, and copied into the next rollout's strategy."""
    values = {
        "min_requests": 50,
        "max_error_rate_increase": 0.01,
        "max_p95_latency_ratio": 1.2,
        "max_p99_latency_ratio": 1.4,
        "min_latency_increase_seconds": 0.002,
        "max_prediction_shift": 0.1,
    }
    answer = client_for(reader).post("/rollouts/thresholds/canary/", values)
    assert answer["Location"] == "/rollouts/thresholds/"
    policy = CanaryPolicy.objects.get(target="canary")
    assert policy.thresholds() == {k: float(v) for k, v in values.items()}
    event = AuditEvent.objects.get(action="rollout.canary_policy_changed")
    assert event.payload_record.data["after"]["max_p99_latency_ratio"] == 1.4
    client_for(devops).post(
        "/rollouts/start/", {"model": MODEL, "version": "1.1.0", "target": "canary"}
    )
    assert Rollout.objects.get().strategy["thresholds"]["min_requests"] == 50


def test_canary_thresholds_bad_input_is_field_errors(client_for, devops):
    """Zero minimum traffic, a ratio below 1 and a missing value: 400, each field named,
    nothing saved."""
    answer = client_for(devops).post(
        "/rollouts/thresholds/canary/",
        {"min_requests": 0, "max_error_rate_increase": "x", "max_p95_latency_ratio": 0.5},
    )
    assert answer.status_code == 400
    errors = answer.context["form"].errors
    assert {
        "min_requests",
        "max_error_rate_increase",
        "max_p95_latency_ratio",
        "max_p99_latency_ratio",
    } <= set(errors)
    assert not CanaryPolicy.objects.exists()
    assert client_for(devops).get("/rollouts/thresholds/moon/").status_code == 404


def test_canary_thresholds_refused_for_other_roles(client_for, auditor):
    """An auditor reads the thresholds but may not change them."""
    client = client_for(auditor)
    assert 'data-testid="policy-canary"' in client.get("/rollouts/thresholds/").content.decode()
    assert client.post("/rollouts/thresholds/canary/", {"min_requests": 5}).status_code == 403
    assert not CanaryPolicy.objects.exists()


def test_rollout_pages_refuse_people_without_a_role(client_for, outsider):
    rollout = RolloutFactory()
    client = client_for(outsider)
    assert client.get("/rollouts/").status_code == 403
    assert client.get(f"/rollouts/{rollout.pk}/").status_code == 403
    assert RegisteredModel.objects.exists()

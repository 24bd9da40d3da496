"""Rollouts driven through their services against the real model server and a real
Prometheus: a healthy canary advances to 100% under steady load without a failed
request, a failing canary rolls back at its first analysis, no traffic pauses, and
the refusals are audited."""

import time

import pytest
from django.db import IntegrityError, transaction

from governance.choices import Target
from governance.models import TargetAssignment
from governance.rollouts.choices import AnalysisResult, RolloutState
from governance.rollouts.models import Rollout
from governance.rollouts.services import (
    RolloutRefused,
    rollout_abort,
    rollout_promote,
    rollout_start,
    rollout_tick,
)
from monitoring.models import Incident
from portal.audit.models import AuditEvent
from portal.security.models import RefusalWindow
from tests.factories.registry import ModelVersionFactory
from tests.governance.rollouts.conftest import FAST, routing_of

pytestmark = [pytest.mark.prometheus, pytest.mark.django_db]


def drive(rollout: Rollout, *, until: tuple[str, ...], timeout: float = 60.0) -> Rollout:
    """Tick the rollout as the task would, until it reaches one of `until`; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rollout = rollout_tick(rollout_id=rollout.pk)
        if rollout.state in until and rollout.synced:
            return rollout
        time.sleep(0.25)
    raise AssertionError(
        f"rollout stayed {rollout.state} at {rollout.weight}% (synced: {rollout.synced}): "
        f"{rollout.outcome}"
    )


def actions(rollout: Rollout) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="rollout", object_id=str(rollout.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_rollout_healthy_canary_succeeds_under_load_without_failed_requests(stack, traffic, devops):
    """30% -> 60% -> 100%, each step analysed from Prometheus and passed; every request
    answered 200 across the weight changes; the version then serves the target and is
    the server's stable version; each transition audited once."""
    rollout = rollout_start(
        version=stack.canary,
        target=Target.CANARY,
        actor=devops.audit_actor(),
        strategy=FAST,
        queue=False,
    )
    assert rollout.attestation.count(".") == 2  # the gate's compact JWS
    rollout = drive(rollout, until=(RolloutState.SUCCEEDED,))
    traffic.stop()
    assert traffic.failures == []
    assert traffic.versions["1.1.0"] > 0 and traffic.versions["1.0.0"] > 0
    results = [s.result for s in rollout.step_records.order_by("index")]
    assert results == [AnalysisResult.PASS] * 3
    assert routing_of(stack.server.routing_path)["stable"]["version"] == "1.1.0"
    assert "canary" not in routing_of(stack.server.routing_path)
    assert TargetAssignment.objects.get(model=rollout.model, target=Target.CANARY).version == (
        stack.canary
    )
    assert actions(rollout) == [
        "rollout.started",
        "rollout.applied",
        "rollout.advanced",
        "rollout.applied",
        "rollout.advanced",
        "rollout.applied",
        "rollout.succeeded",
        "rollout.applied",
    ]


def test_rollout_canary_errors_roll_back_at_first_analysis(stack, traffic, devops):
    """Half the canary's answers fail: the first analysis after the bake time fails the
    canary, traffic goes back to the stable version with no injected fault left, and the
    reason is recorded."""
    stack.faults({"1.1.0": {"error_rate": 0.5}})
    rollout = rollout_start(
        version=stack.canary,
        target=Target.CANARY,
        actor=devops.audit_actor(),
        strategy=FAST,
        queue=False,
    )
    rollout = drive(rollout, until=(RolloutState.ROLLED_BACK,))
    steps = list(rollout.step_records.order_by("index"))
    assert [s.result for s in steps] == [AnalysisResult.FAIL]
    # Decided at the first look after the step's bake time, not later.
    assert (steps[0].analysed_at - steps[0].started_at).total_seconds() < FAST["bake_seconds"] + 3
    assert "error rate" in rollout.outcome
    assert "canary" not in routing_of(stack.server.routing_path)
    # The withdrawn version's fault leaves with it: it would come back with its next canary.
    assert "faults" not in routing_of(stack.server.routing_path)
    assert TargetAssignment.objects.get(model=rollout.model, target=Target.CANARY).version == (
        stack.stable
    )
    assert actions(rollout)[-2:] == ["rollout.rolled_back", "rollout.applied"]
    # The automatic rollback opened a critical incident carrying the failed analysis.
    incident = Incident.objects.get(fingerprint=f"rollout-{rollout.pk}-rolled-back")
    assert (incident.source, incident.severity) == ("canary_analysis", "critical")
    assert incident.annotations["analysis"]["result"] == AnalysisResult.FAIL
    assert "error rate" in incident.summary


def test_rollout_without_traffic_pauses_then_a_person_decides(stack, devops):
    """No requests: the analysis is inconclusive and the rollout pauses at 30% for a
    person, who may promote it to the next step or abort it (traffic back to stable)."""
    rollout = rollout_start(
        version=stack.canary,
        target=Target.CANARY,
        actor=devops.audit_actor(),
        strategy=FAST,
        queue=False,
    )
    rollout = drive(rollout, until=(RolloutState.PAUSED,))
    step = rollout.step_records.get(index=0)
    assert step.result == AnalysisResult.INCONCLUSIVE
    assert "too little traffic" in step.analysis["reasons"][0]
    assert routing_of(stack.server.routing_path)["canary"]["weight"] == 30

    rollout = rollout_promote(rollout=rollout, actor=devops.audit_actor())
    rollout = drive(rollout, until=(RolloutState.PROGRESSING,))
    assert routing_of(stack.server.routing_path)["canary"]["weight"] == 60

    rollout = rollout_abort(rollout=rollout, actor=devops.audit_actor())
    rollout = drive(rollout, until=(RolloutState.ABORTED,))
    assert "canary" not in routing_of(stack.server.routing_path)
    assert "rollout.promoted" in actions(rollout) and "rollout.aborted" in actions(rollout)


def _refusal(version) -> AuditEvent:
    return AuditEvent.objects.filter(
        action="rollout.refused", object_type="model_version", object_id=str(version.pk)
    ).get()


def test_rollout_start_without_approval_is_refused_and_audited(stack, devops):
    """A version the board has not approved for the target does not start."""
    unapproved = ModelVersionFactory(model=stack.stable.model, version="1.2.0", version_minor=2)
    with pytest.raises(RolloutRefused) as refused:
        rollout_start(version=unapproved, target=Target.CANARY, actor=devops.audit_actor())
    assert refused.value.code == "no_gate"
    assert not Rollout.objects.exists()
    assert _refusal(unapproved).payload_record.data["code"] == "rollout_no_gate"


def test_rollout_start_by_wrong_role_is_refused_and_audited(stack, lead):
    """The caller's permission check said no: refused, audited, nothing started."""
    with pytest.raises(RolloutRefused) as refused:
        rollout_start(
            version=stack.canary, target=Target.CANARY, actor=lead.audit_actor(), allowed=False
        )
    assert refused.value.code == "forbidden"
    assert not Rollout.objects.exists()
    assert _refusal(stack.canary).actor_id == lead.audit_actor().id
    # Counted through portal.security like every refusal: it shows on /audit/refusals/.
    assert RefusalWindow.objects.get().kind == "domain.rollout_forbidden"


def test_second_active_rollout_is_refused_by_service_and_database(stack, devops):
    """One active rollout per (model, target): the service refuses (audited), and the
    database refuses a second row written past it."""
    first = rollout_start(
        version=stack.canary,
        target=Target.CANARY,
        actor=devops.audit_actor(),
        strategy=FAST,
        queue=False,
    )
    with pytest.raises(RolloutRefused) as refused:
        rollout_start(version=stack.canary, target=Target.CANARY, actor=devops.audit_actor())
    assert refused.value.code == "active"
    assert _refusal(stack.canary).payload_record.data["code"] == "rollout_active"
    with pytest.raises(IntegrityError), transaction.atomic():
        Rollout.objects.create(
            model=first.model,
            version=first.version,
            target=first.target,
            stable_version=first.stable_version,
            backend="local",
            strategy=FAST,
        )

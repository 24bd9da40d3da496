"""Backfilling the gate's stored answers (GateState) for reviews made before answers
were stored: the answers it writes equal a fresh computation, a dry run changes
nothing, a second run finds nothing, and a stored answer that drifted is put right."""

import pytest
from django.core.management import call_command

from governance.choices import Target
from governance.reviews.choices import ReviewState
from governance.reviews.models import GateState
from governance.reviews.selectors import gate_answer, gate_answer_compute
from governance.reviews.services.gates import gate_states_backfill
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db
OPERATOR = Actor.system("tests")


@pytest.fixture()
def reviewed(approved_for, open_review):
    """Two versions: one approved for staging and waiting for canary, one waiting for
    staging; then their stored answers removed, as before answers were stored."""
    approved = ModelVersionFactory()
    approved_for(approved, Target.STAGING)
    open_review(approved, Target.CANARY)
    waiting = ModelVersionFactory()
    open_review(waiting, Target.STAGING)
    GateState.objects.all().delete()
    return approved, waiting


def _pairs():
    return sorted(GateState.objects.values_list("version_id", "target"))


def _assert_current(*versions) -> None:
    for version in versions:
        for target in Target.values:
            args = {"model_slug": version.model.slug, "version": version.version, "target": target}
            assert gate_answer(**args) == gate_answer_compute(**args), (version, target)


def test_gate_state_backfill_stores_every_reviewed_pair_as_a_fresh_computation(reviewed):
    approved, waiting = reviewed

    report = gate_states_backfill(actor=OPERATOR)

    expected = sorted(
        [(approved.pk, Target.STAGING), (approved.pk, Target.CANARY), (waiting.pk, Target.STAGING)]
    )
    assert report.missing == expected and report.stale == []
    assert _pairs() == expected
    assert GateState.objects.get(version=approved, target=Target.STAGING).review_state == (
        ReviewState.APPROVED
    )
    _assert_current(approved, waiting)
    event = AuditEvent.objects.get(action="gate_state.backfilled")
    assert event.payload_record.data == {"created": 3, "refreshed": 0}


def test_gate_state_backfill_dry_run_reports_and_changes_nothing(reviewed):
    events = AuditEvent.objects.count()

    report = gate_states_backfill(actor=OPERATOR, dry_run=True)

    assert len(report.missing) == 3
    assert _pairs() == []
    assert AuditEvent.objects.count() == events


def test_gate_state_backfill_twice_finds_nothing_the_second_time(reviewed):
    gate_states_backfill(actor=OPERATOR)
    rows = {row.pk: row.revision for row in GateState.objects.all()}
    events = AuditEvent.objects.count()

    second = gate_states_backfill(actor=OPERATOR)

    assert second.missing == [] and second.stale == []
    assert {row.pk: row.revision for row in GateState.objects.all()} == rows
    assert AuditEvent.objects.count() == events


def test_gate_state_backfill_puts_right_a_stored_answer_that_differs(reviewed):
    """A row saying "approved" for a review that waits would open the gate: the
    backfill finds it and stores what the reviews say."""
    approved, waiting = reviewed
    gate_states_backfill(actor=OPERATOR)
    GateState.objects.filter(version=waiting).update(review_state=ReviewState.APPROVED)
    assert gate_answer(
        model_slug=waiting.model.slug, version=waiting.version, target=Target.STAGING
    ).allowed

    report = gate_states_backfill(actor=OPERATOR)

    assert report.missing == [] and report.stale == [(waiting.pk, Target.STAGING)]
    _assert_current(approved, waiting)


def test_gate_state_backfill_command_says_what_it_would_do_then_does_it(reviewed, capsys):
    call_command("gate_state_backfill", "--dry-run")
    assert "3 gate answer(s) missing would be created" in capsys.readouterr().out
    assert _pairs() == []

    call_command("gate_state_backfill")

    assert "3 gate answer(s) missing were created" in capsys.readouterr().out
    assert len(_pairs()) == 3

"""Two board members deciding at the same moment produce exactly one outcome: the
review row lock makes the second wait and see the first one's decision, and the gate's
stored answer is the one a fresh computation gives after both."""

import importlib
import threading

import pytest
from django.apps import apps
from django.db import connection

from governance.choices import Target
from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.models import GateState, Review, ReviewDecision
from governance.reviews.selectors import gate_answer, gate_answer_compute
from governance.reviews.services import DecisionRefused, review_decide, review_open
from portal.accounts.choices import Role
from portal.audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _default_policies(transactional_db):
    # Transactional tests start from emptied tables: put the migration's defaults back.
    migration = importlib.import_module("governance.reviews.migrations.0002_default_policies")
    migration.create_defaults(apps, None)


def _race(calls):
    """Run the calls in threads released together; return each one's result or error."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as error:  # the test inspects what each thread got
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _gate_current(review: Review) -> None:
    version = review.version
    args = {"model_slug": version.model.slug, "version": version.version, "target": review.target}
    assert gate_answer(**args) == gate_answer_compute(**args)


def test_last_two_approvals_at_once_approve_the_review_once(
    ready_for_production, open_review, lead, privacy, devops
):
    review = open_review(ready_for_production())
    review_decide(
        review=review, reviewer=lead, verdict=Verdict.APPROVE, role=Role.DATA_SCIENCE_LEAD
    )
    results = _race(
        [
            lambda: review_decide(
                review=review, reviewer=privacy, verdict=Verdict.APPROVE, role=Role.PRIVACY_OFFICER
            ),
            lambda: review_decide(
                review=review, reviewer=devops, verdict=Verdict.APPROVE, role=Role.DEVOPS
            ),
        ]
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(r.decided for r in results) == [False, True]
    assert Review.objects.get(pk=review.pk).state == ReviewState.APPROVED
    assert AuditEvent.objects.filter(action="review.decided", object_id=str(review.pk)).count() == 1
    _gate_current(review)
    answer = gate_answer(
        model_slug=review.version.model.slug, version=review.version.version, target=review.target
    )
    assert answer.allowed and len(answer.approvals) == 3


def test_approve_and_reject_at_once_give_one_outcome(
    ready_for_production, open_review, lead, privacy, devops
):
    review = open_review(ready_for_production())
    review_decide(
        review=review, reviewer=lead, verdict=Verdict.APPROVE, role=Role.DATA_SCIENCE_LEAD
    )
    review_decide(
        review=review, reviewer=privacy, verdict=Verdict.APPROVE, role=Role.PRIVACY_OFFICER
    )
    other_devops = type(devops).objects.get(pk=devops.pk)
    second_devops = UserFactory(roles=[Role.DEVOPS])
    results = _race(
        [
            lambda: review_decide(
                review=review, reviewer=other_devops, verdict=Verdict.APPROVE, role=Role.DEVOPS
            ),
            lambda: review_decide(
                review=review,
                reviewer=second_devops,
                verdict=Verdict.REJECT,
                role=Role.DEVOPS,
                comment="Capacity is not there.",
            ),
        ]
    )
    outcomes = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, DecisionRefused)]
    # Whoever locked first decided the review; the other found it closed.
    assert len(outcomes) == 1 and len(refused) == 1, results
    assert refused[0].code == "review_closed"
    final = Review.objects.get(pk=review.pk).state
    assert final == outcomes[0].state
    assert final in (ReviewState.APPROVED, ReviewState.REJECTED)
    assert AuditEvent.objects.filter(action="review.decided", object_id=str(review.pk)).count() == 1
    _gate_current(review)


def test_same_member_twice_at_once_records_one_decision(version, open_review, lead):
    review = open_review(version, Target.PRODUCTION)
    results = _race(
        [
            lambda: review_decide(
                review=review,
                reviewer=type(lead).objects.get(pk=lead.pk),
                verdict=Verdict.APPROVE,
                role=Role.DATA_SCIENCE_LEAD,
            )
            for _ in range(2)
        ]
    )
    refused = [r for r in results if isinstance(r, DecisionRefused)]
    assert len(refused) == 1 and refused[0].code == "already_decided", results
    assert ReviewDecision.objects.filter(review=review, reviewer=lead).count() == 1
    _gate_current(review)


def test_two_opens_of_the_same_review_at_once_store_one_gate_answer(version, owner):
    """CI and Cloud Deploy asking for the same review at the same moment: one review,
    one stored gate answer, the other caller handed the same review."""
    results = _race(
        [
            lambda: review_open(
                version=version,
                target=Target.STAGING,
                requested_by_actor=owner.audit_actor(),
                source="ci",
            )
            for _ in range(2)
        ]
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0].pk == results[1][0].pk
    assert GateState.objects.filter(version=version, target=Target.STAGING).count() == 1
    _gate_current(results[0][0])

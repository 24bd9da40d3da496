"""The shared outbox steps (portal.outbox): claim under the row's lock, send holding
nothing, record only when the row is still this attempt's, the named errors recorded
and any other left to the lease. Exercised with a small sender of the test's own over
real e-mail outbox rows, so each step's effect on the row is visible in the database."""

from datetime import datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from portal.notify.choices import DeliveryState
from portal.notify.models import EmailNotification
from portal.outbox import Backoff, Outbox, lease_left, outbox_claim, outbox_record, outbox_send
from tests.factories.accounts import UserFactory

pytestmark = pytest.mark.django_db

LEASE = timedelta(seconds=60)


class OutsideDown(Exception):
    """The outside system is away (an error the sender names)."""


class Sender(Outbox[EmailNotification, str, str]):
    """Claims a pending row whose lease has run out, 'sends' by calling `call`, and
    records the outcome (or the error) as the row's state and last error."""

    model = EmailNotification
    errors = (OutsideDown,)

    def __init__(self, call=lambda row: "ok") -> None:
        self.call = call
        self.sent: list[int] = []
        self.depth_during_send: list[int] = []

    def missing(self, pk: int) -> str:
        return "missing"

    def claim(self, row: EmailNotification, now: datetime) -> str | None:
        if row.state != DeliveryState.PENDING:
            return "done"
        if row.attempts and lease_left(taken_at=row.next_attempt_at, lease=LEASE, now=now):
            return "leased"
        row.attempts += 1
        row.next_attempt_at = now
        row.save(update_fields=["attempts", "next_attempt_at"])
        return None

    def send(self, row: EmailNotification) -> str:
        self.sent.append(row.attempts)
        self.depth_during_send.append(len(connection.atomic_blocks))
        return self.call(row)

    def in_flight(self, row: EmailNotification) -> bool:
        return row.state == DeliveryState.PENDING

    def taken_over(self, row: EmailNotification) -> str:
        return "taken over"

    def record(
        self, row: EmailNotification, *, outcome: str | None, error: Exception | None, now
    ) -> str:
        row.state = DeliveryState.FAILED if error else DeliveryState.DELIVERED
        row.last_error = str(error or "")
        row.sent_at = now
        row.save()
        return outcome or f"error: {error}"


@pytest.fixture
def row() -> EmailNotification:
    return EmailNotification.objects.create(
        recipient=UserFactory(), event_type="t", event_id="e1", subject="s", body="b"
    )


def test_backoff_doubles_from_its_base_and_stops_at_its_cap():
    assert [Backoff().seconds(n) for n in (0, 1, 2, 3, 8)] == [30, 30, 60, 120, 3840]
    capped = Backoff(base_seconds=30, max_seconds=1800)
    assert [capped.seconds(n) for n in (1, 6, 7, 20)] == [30, 960, 1800, 1800]


def test_lease_left_runs_out_and_counts_a_missing_time_as_taken_now():
    now = timezone.now()
    assert lease_left(taken_at=now - timedelta(seconds=20), lease=LEASE, now=now) == timedelta(
        seconds=40
    )
    assert lease_left(taken_at=now - LEASE, lease=LEASE, now=now) is None
    assert lease_left(taken_at=None, lease=LEASE, now=now) == LEASE


def test_outbox_send_claims_sends_without_a_transaction_and_records(row):
    sender = Sender()
    depth = len(connection.atomic_blocks)  # the test's own transaction

    assert outbox_send(sender, row.pk) == "ok"

    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 1)
    assert sender.sent == [1]
    # The outside call runs outside the claim's transaction: no row lock held across it.
    assert sender.depth_during_send == [depth]


def test_outbox_send_of_a_missing_row_answers_missing_and_sends_nothing():
    sender = Sender()

    assert outbox_send(sender, 999_999) == "missing"
    assert sender.sent == []


def test_outbox_send_leaves_a_row_alone_when_the_claim_refuses(row):
    row.state = DeliveryState.DELIVERED
    row.save()
    sender = Sender()

    assert outbox_send(sender, row.pk) == "done"
    assert sender.sent == []


def test_outbox_send_records_a_named_error(row):
    def down(_row):
        raise OutsideDown("503 from the outside system")

    assert outbox_send(Sender(down), row.pk) == "error: 503 from the outside system"
    row.refresh_from_db()
    assert (row.state, row.last_error) == (DeliveryState.FAILED, "503 from the outside system")


def test_outbox_send_lets_other_errors_through_and_leaves_the_row_to_its_lease(row):
    def broken(_row):
        raise KeyError("a bug, not an outage")

    with pytest.raises(KeyError):
        outbox_send(Sender(broken), row.pk)
    row.refresh_from_db()
    # Claimed, nothing recorded: the lease holds it, then another run may take it.
    assert (row.state, row.attempts) == (DeliveryState.PENDING, 1)
    assert outbox_send(Sender(), row.pk) == "leased"
    with time_machine.travel(timezone.now() + LEASE + timedelta(seconds=1)):
        assert outbox_send(Sender(), row.pk) == "ok"
    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 2)


def test_outbox_record_drops_an_outcome_after_another_run_took_the_row_over(row):
    slow = Sender()
    claimed = outbox_claim(slow, row.pk)
    assert isinstance(claimed, EmailNotification)
    # The slow run's lease runs out; a second run claims the row (attempt 2) and is
    # still sending when the slow run comes back to record.
    with time_machine.travel(timezone.now() + LEASE + timedelta(seconds=1)):
        second = outbox_claim(Sender(), row.pk)
    assert isinstance(second, EmailNotification) and second.attempts == 2

    assert outbox_record(slow, claimed, outcome="late") == "taken over"
    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.PENDING, 2)
    assert outbox_record(Sender(), second, outcome="ok") == "ok"
    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED


def test_outbox_claim_rolls_back_with_no_partial_claim_when_claim_raises(row):
    class Exploding(Sender):
        def claim(self, row, now):
            row.attempts += 1
            row.save()
            raise RuntimeError("claim failed")

    with pytest.raises(RuntimeError):
        outbox_claim(Exploding(), row.pk)
    row.refresh_from_db()
    assert row.attempts == 0

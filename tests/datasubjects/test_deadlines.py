"""The Art. 12(3) clock: one month from receipt, month ends, one extension inside month one."""

from datetime import date, datetime

import pytest
import time_machine
from django.core import mail

from datasubjects.deadlines import dsar_due_date
from datasubjects.services import RequestRefused, request_extend, requests_deadline_sweep
from portal.audit.models import AuditEvent


@pytest.mark.parametrize(
    ("received", "extension", "due"),
    [
        (date(2027, 1, 31), 0, date(2027, 2, 28)),
        (date(2028, 1, 31), 0, date(2028, 2, 29)),  # leap year
        (date(2027, 3, 31), 0, date(2027, 4, 30)),
        (date(2027, 1, 15), 0, date(2027, 2, 15)),
        (date(2027, 12, 31), 0, date(2028, 1, 31)),
        (date(2027, 1, 31), 2, date(2027, 4, 30)),
        (date(2027, 11, 30), 1, date(2028, 1, 30)),
    ],
)
def test_dsar_due_date_month_ends(received, extension, due):
    """A month from receipt ends on the same date, or the month's last day when it has
    no such date; an extension counts from receipt too."""
    assert dsar_due_date(received_on=received, extension_months=extension) == due


def test_dsar_due_date_refuses_three_month_extension():
    """At most two further months (Art. 12(3))."""
    with pytest.raises(ValueError, match="0 to 2"):
        dsar_due_date(received_on=date(2027, 1, 1), extension_months=3)


def test_verified_request_is_due_a_month_after_verification(verified_request):
    """Verifying on 31 January makes the request pending, received that day, due 28 February."""
    dsr = verified_request(at=datetime(2027, 1, 31, 12, 0))
    assert (dsr.state, dsr.received_on, dsr.due_on) == (
        "pending",
        date(2027, 1, 31),
        date(2027, 2, 28),
    )


def test_extension_inside_month_one_moves_due_date_and_tells_requester(
    verified_request, privacy_officer, django_capture_on_commit_callbacks
):
    """Extended on the last day of month one by two months: due three months from
    receipt, the requester gets the reason by e-mail, and the ledger records it."""
    dsr = verified_request(at=datetime(2027, 1, 31, 12, 0))
    mail.outbox.clear()
    with (
        time_machine.travel(datetime(2027, 2, 28, 18, 0), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        dsr = request_extend(
            request=dsr, months=2, reason="Records in five systems", user=privacy_officer
        )
    assert dsr.due_on == date(2027, 4, 30)
    assert [m.to for m in mail.outbox] == [["customer-1@example.com"]]
    assert "Records in five systems" in mail.outbox[0].body
    event = AuditEvent.objects.filter(action="dsr.extended").get()
    assert event.object_id == str(dsr.public_id)
    assert event.payload_record.data["months"] == 2


def test_extension_after_month_one_is_refused(verified_request, privacy_officer):
    """The day after the first deadline, an extension comes too late."""
    dsr = verified_request(at=datetime(2027, 1, 31, 12, 0))
    with (
        time_machine.travel(datetime(2027, 3, 1, 9, 0), tick=False),
        pytest.raises(RequestRefused) as refused,
    ):
        request_extend(request=dsr, months=1, reason="Late", user=privacy_officer)
    assert refused.value.code == "first_month_over"
    dsr.refresh_from_db()
    assert (dsr.extended_months, dsr.due_on) == (0, date(2027, 2, 28))


def test_extension_twice_is_refused(verified_request, privacy_officer):
    """Only one extension per request."""
    dsr = verified_request(at=datetime(2027, 1, 10, 12, 0))
    with time_machine.travel(datetime(2027, 1, 20, 12, 0), tick=False):
        dsr = request_extend(request=dsr, months=1, reason="Complex", user=privacy_officer)
        with pytest.raises(RequestRefused) as refused:
            request_extend(request=dsr, months=1, reason="Again", user=privacy_officer)
    assert refused.value.code == "extended"


def test_extension_without_reason_is_refused(verified_request, privacy_officer):
    """The requester must be told why, so a reason is required."""
    from django.core.exceptions import ValidationError

    dsr = verified_request(at=datetime(2027, 1, 10, 12, 0))
    with pytest.raises(ValidationError) as error:
        request_extend(request=dsr, months=1, reason="  ", user=privacy_officer)
    assert "reason" in error.value.message_dict


def test_deadline_sweep_reminds_once_then_alerts_overdue_once(
    verified_request, privacy_officer, django_capture_on_commit_callbacks
):
    """A week before the deadline the officers get one reminder; the day after it one
    overdue alert, recorded in the ledger; sweeping again sends nothing more."""
    dsr = verified_request(at=datetime(2027, 1, 31, 12, 0))
    mail.outbox.clear()
    with time_machine.travel(datetime(2027, 2, 20, 8, 0), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            first = requests_deadline_sweep(reminder_days=7)
        again = requests_deadline_sweep(reminder_days=7)
    assert (first.reminded, first.overdue, again.reminded) == (0, 0, 0)
    with (
        time_machine.travel(datetime(2027, 2, 22, 8, 0), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        reminded = requests_deadline_sweep(reminder_days=7)
    with time_machine.travel(datetime(2027, 3, 1, 8, 0), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            overdue = requests_deadline_sweep(reminder_days=7)
        repeat = requests_deadline_sweep(reminder_days=7)
    assert (reminded.reminded, overdue.overdue, repeat.overdue) == (1, 1, 0)
    assert [m.to for m in mail.outbox] == [[privacy_officer.email]] * 2
    assert "overdue" in mail.outbox[1].subject
    assert (
        AuditEvent.objects.filter(action="dsr.overdue", object_id=str(dsr.public_id)).count() == 1
    )

"""Refusal windows: one audit event per (kind, source, window), the rest counted, also
under concurrent refusals; auditors read the counts."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.security.models import RefusalWindow
from portal.security.services import security_refusal_record

NOON = datetime(2026, 3, 2, 12, 0, 10, tzinfo=UTC)


def refuse(source: str = "ip:203.0.113.9", kind: str = "test.refused", **details):
    return security_refusal_record(
        kind=kind,
        source=source,
        action=kind,
        actor=Actor.anonymous(),
        details=details or {"reason": "no"},
        client_ip=source.removeprefix("ip:"),
    )


@pytest.mark.django_db
def test_refusal_record_audits_the_first_and_counts_the_rest():
    """The first refusal of a window is audited with its details; later ones in the
    same window are counted only; another source or kind opens its own window."""
    with time_machine.travel(NOON, tick=False):
        first = refuse(reason="first", attempt=1)
        later = [refuse(reason="later") for _ in range(9)]
        refuse(source="ip:198.51.100.1")
        refuse(kind="test.other")

    assert first.first and not any(counted.first for counted in later)
    assert {counted.window_id for counted in later} == {first.window_id}
    window = RefusalWindow.objects.get(pk=first.window_id)
    assert window.count == 10
    assert window.window_start == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert window.event.payload_record.data == {"reason": "first", "attempt": 1}
    assert AuditEvent.objects.filter(action="test.refused").count() == 2
    assert AuditEvent.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_refusal_record_concurrent_first_refusals_write_one_event():
    """Refusals racing to open the same window: the loser's INSERT waits for the
    winner's transaction, then counts in its window, so there is one event and every
    refusal is counted."""
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            refuse()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    with time_machine.travel(NOON, tick=False):
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert errors == []
    assert RefusalWindow.objects.get().count == 6
    assert AuditEvent.objects.filter(action="test.refused").count() == 1


def _windows(count: int) -> None:
    with time_machine.travel(NOON, tick=False):
        for index in range(count):
            refuse(source=f"ip:203.0.113.{index + 1}")
            refuse(source=f"ip:203.0.113.{index + 1}")


@pytest.mark.django_db
def test_refusal_page_shows_counts_to_auditors(client_for, auditor):
    """Auditors see each window's count and the audit event kept for it."""
    _windows(1)
    window = RefusalWindow.objects.get()

    response = client_for(auditor).get("/audit/refusals/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "ip:203.0.113.1" in page
    assert '<td class="num">2</td>' in page
    assert f'href="/audit/events/{window.event.sequence}/"' in page


@pytest.mark.django_db
def test_refusal_page_filters_by_source(client_for, auditor):
    """The source filter narrows the list to one sender."""
    _windows(2)

    page = client_for(auditor).get("/audit/refusals/?source=ip:203.0.113.2").content.decode()

    assert "ip:203.0.113.2" in page and "ip:203.0.113.1<" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("size", [1, 3])
def test_refusal_page_query_count_does_not_grow_with_rows(client_for, auditor, size):
    """One query for the rows and their events, whatever the number of windows."""
    _windows(size)
    client = client_for(auditor)
    client.get("/audit/refusals/")

    with CaptureQueriesContext(connection) as queries:
        assert client.get("/audit/refusals/").status_code == 200

    assert len(queries) == 5


@pytest.mark.django_db
def test_refusal_page_refuses_people_without_audit_rights(client_for, outsider):
    """Only auditors and admins read the counts."""
    assert client_for(outsider).get("/audit/refusals/").status_code == 403


def test_refusal_window_start_is_aligned(settings):
    """Windows start on multiples of the window length, in UTC."""
    from portal.security.services import refusal_window_start

    settings.SECURITY_REFUSAL_WINDOW_SECONDS = 600
    assert refusal_window_start(NOON + timedelta(minutes=9, seconds=49)) == datetime(
        2026, 3, 2, 12, 0, tzinfo=UTC
    )
    assert refusal_window_start(NOON + timedelta(minutes=10)) == datetime(
        2026, 3, 2, 12, 10, tzinfo=UTC
    )

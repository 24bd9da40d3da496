"""Two admins approving one change at the same moment: the request's row lock makes
the second wait and find it decided, so the role is granted once."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from portal.accounts.choices import Role
from portal.accounts.models import RoleGrant
from portal.accounts.services import role_grant
from portal.audit.models import AuditEvent
from portal.changes.services import change_approve
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(calls):
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


def test_change_approve_by_two_admins_at_once_grants_once():
    proposer, first, second = (UserFactory(roles=[Role.PORTAL_ADMIN]) for _ in range(3))
    person = UserFactory()
    change = role_grant(user=person, role=Role.DATA_SCIENCE_LEAD, granted_by=proposer)

    results = _race(
        [
            lambda: change_approve(change=change, approved_by=first),
            lambda: change_approve(change=change, approved_by=second),
        ]
    )

    refused = [r for r in results if isinstance(r, ValidationError)]
    assert len(refused) == 1 and "already approved" in str(refused[0])
    assert RoleGrant.objects.filter(user=person, role=Role.DATA_SCIENCE_LEAD).count() == 1
    assert AuditEvent.objects.filter(action="change_request.approved").count() == 1
    assert AuditEvent.objects.filter(action="role.granted").count() == 1

"""A card edit and a board decision on the same version at once: both commit, and the
gate's stored answer follows. The card edit's first lock (the card, with its version
row in the same statement) takes the version before the audit chain head, the order
every review service keeps; a card edit that took the chain head before the version
(which it needs to send the reviews back) would wait in a circle on a decision."""

import importlib
import threading
import time

import pytest
from django.apps import apps
from django.db import connection, connections, transaction

from governance.choices import Target
from governance.models import ModelVersion
from governance.reviews.choices import Verdict
from governance.reviews.selectors import gate_answer, gate_answer_compute
from governance.reviews.services import review_decide
from governance.services.cards import card_section_update
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.services import audit_record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _default_policies(transactional_db):
    # Transactional tests start from emptied tables: put the migration's defaults back.
    migration = importlib.import_module("governance.reviews.migrations.0002_default_policies")
    migration.create_defaults(apps, None)


def _blocked_on_a_lock(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def test_card_edit_while_a_writer_holds_the_version_does_not_deadlock(version, open_review, lead):
    """A writer in the portal's lock order (the version row, then the audit chain head,
    as review_decide takes them) and a card edit of the same version at once: the card
    edit waits for the version without holding the chain head, so both commit, and the
    approval it sent back is no longer the gate's answer."""
    review = open_review(version, Target.STAGING)
    review_decide(
        review=review, reviewer=lead, verdict=Verdict.APPROVE, role=Role.DATA_SCIENCE_LEAD
    )
    args = {"model_slug": version.model.slug, "version": version.version, "target": "staging"}
    assert gate_answer(**args).allowed
    card = version.card
    edit: dict = {}

    def edit_card() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                edit["pid"] = cursor.fetchone()[0]
            card_section_update(
                card=card, key="limitations", content="Edited at once.", data=None, actor_user=lead
            )
            edit["done"] = True
        except Exception as error:  # the test reports what the thread got
            edit["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=edit_card)
    writer_error = None
    try:
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
            thread.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                "pid" in edit and _blocked_on_a_lock(edit["pid"])
            ):
                time.sleep(0.05)
            assert "pid" in edit and _blocked_on_a_lock(edit["pid"]), "the edit never waited"
            audit_record(action="test.version_locked", actor=Actor.system("tests"))
    except Exception as error:  # a deadlock may abort either side
        writer_error = error
    thread.join(timeout=30)
    assert writer_error is None, writer_error
    assert edit.get("done") and "error" not in edit, edit
    # The edit sent the approval back: the stored answer says so, as a fresh one does.
    assert gate_answer(**args).state == "pending"
    assert gate_answer(**args) == gate_answer_compute(**args)

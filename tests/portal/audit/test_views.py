"""Audit trail pages: who may read them, filters, pagination, verification."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.services import audit_record

pytestmark = pytest.mark.django_db


def _events(n: int) -> None:
    for i in range(n):
        audit_record(
            action="role.granted" if i % 2 else "apitoken.created",
            actor=Actor.system("test"),
            object_type="user",
            object_id=i,
            payload={"i": i},
        )


@pytest.mark.parametrize(
    "role", [Role.DATA_SCIENCE_LEAD, Role.PRIVACY_OFFICER, Role.DEVOPS, Role.MODEL_OWNER]
)
def test_audit_list_refused_without_auditor_or_admin_role(client_for, make_user, role):
    response = client_for(make_user(role)).get(reverse("audit:event_list"))
    assert response.status_code == 403


def test_audit_list_anonymous_is_sent_to_sign_in(client):
    response = client.get(reverse("audit:event_list"))
    assert response.status_code == 302


def test_audit_list_shows_events_to_the_auditor(client_for, auditor):
    _events(3)
    html = client_for(auditor).get(reverse("audit:event_list")).content.decode()
    assert "role.granted" in html and "apitoken.created" in html


def test_audit_list_filters_by_action_prefix(client_for, auditor):
    _events(4)
    html = (
        client_for(auditor).get(reverse("audit:event_list"), {"action": "role."}).content.decode()
    )
    assert "<code>role.granted</code>" in html
    assert "<code>apitoken.created</code>" not in html


def test_audit_list_rejects_a_malformed_actor_filter_with_a_field_error(client_for, auditor):
    response = client_for(auditor).get(reverse("audit:event_list"), {"actor": "robot:1"})
    assert response.status_code == 400
    assert "Start with one of" in response.content.decode()


def test_audit_list_query_count_does_not_grow_with_rows(client_for, auditor):
    client = client_for(auditor)
    _events(3)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("audit:event_list"))
    _events(60)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("audit:event_list"))
    assert len(many) == len(few)


def test_audit_detail_shows_hash_and_payload(client_for, auditor):
    """The payload reads as JSON (issue 14: no longer a Python repr)."""
    _events(1)
    html = client_for(auditor).get(reverse("audit:event_detail", args=[1])).content.decode()
    assert "Payload digest" in html and "&quot;i&quot;: 0" in html


def test_audit_verify_button_reports_an_intact_chain(client_for, auditor):
    _events(2)
    response = client_for(auditor).post(reverse("audit:verify"), follow=True)
    assert "audit chain intact" in response.content.decode()


def test_audit_verify_refuses_get(client_for, auditor):
    assert client_for(auditor).get(reverse("audit:verify")).status_code == 405


def test_audit_list_filters_are_labelled_in_words(client_for, auditor):
    """Every filter of the trail has a plain label (the actor filter had none and read
    "[invalid name]"), the date filters read Since and Until as their errors do, and the
    actor filter shows the syntax it expects."""
    html = client_for(auditor).get(reverse("audit:event_list")).content.decode()
    assert "[invalid name]" not in html
    assert "greater than or equal" not in html and "less than or equal" not in html
    for label in ("Action starts with", "Actor", "Object type", "Object id", "Since", "Until"):
        assert f">{label}:</label>" in html
    assert 'placeholder="user:12, token:ab12cd34 or system"' in html

"""The audit browser: actors by name and role, payloads as JSON, a model version's whole
life on one timeline, and streamed CSV / JSON exports of any filtered view."""

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.choices import Target
from governance.reviews.choices import ReviewSource
from governance.reviews.services import review_open
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent
from portal.audit.services import audit_record
from portal.audit.timeline import audit_timeline
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


def _events(n: int, *, actor: Actor = SYSTEM, action: str = "test.exported") -> None:
    for i in range(n):
        audit_record(
            action=action, actor=actor, object_type="thing", object_id=i, payload={"n": i, "é": "ü"}
        )


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_audit_list_shows_actors_by_name_and_role(client_for, auditor, make_user):
    """The ledger's `user:<id>` reads as the person and their roles to an auditor."""
    lead = make_user(Role.DATA_SCIENCE_LEAD, full_name="Dana Lead")
    _events(1, actor=lead.audit_actor())
    page = client_for(auditor).get(reverse("audit:event_list")).content.decode()
    assert "Dana Lead (Data science lead)" in page
    assert f"user:{lead.pk}" in page


def test_audit_detail_shows_the_payload_as_formatted_json(client_for, auditor):
    """Payloads are indented JSON with their own characters, not a Python repr."""
    _events(1)
    event = AuditEvent.objects.get(action="test.exported")
    page = client_for(auditor).get(reverse("audit:event_detail", args=[event.sequence]))
    text = page.content.decode()
    assert "  &quot;n&quot;: 0,\n  &quot;é&quot;: &quot;ü&quot;" in text
    assert "{'n'" not in text


def test_audit_timeline_of_a_version_gathers_its_reviews(client_for, auditor, make_user):
    """A version's timeline holds its own events and its reviews' (opened, decided),
    and none of another version's."""
    owner = make_user(Role.MODEL_OWNER)
    version = ModelVersionFactory()
    other = ModelVersionFactory(model=version.model)
    review, _ = review_open(
        version=version,
        target=Target.STAGING,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )
    review_open(
        version=other,
        target=Target.STAGING,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )
    object_id = f"{version.model.slug}@{version.version}"
    audit_record(
        action="card.edited",
        actor=owner.audit_actor(),
        object_type="model_version",
        object_id=object_id,
    )
    url = reverse("audit:timeline", args=["model_version", object_id])
    page = client_for(auditor).get(url).content.decode()
    assert "card.edited" in page
    assert f"on review {review.pk}" in page
    review_events = AuditEvent.objects.filter(object_type="review", object_id=str(review.pk))
    assert review_events.exists()
    for event in review_events:
        assert f"#{event.sequence}</a>" in page
    other_review = AuditEvent.objects.filter(object_type="review").exclude(object_id=str(review.pk))
    for event in other_review:
        assert f"#{event.sequence}</a>" not in page
    # The page's CSV link exports what the timeline shows, its reviews' events included.
    export_url = reverse("audit:timeline_export", args=["model_version", object_id])
    assert export_url in page
    export = client_for(auditor).get(export_url)
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    shown = list(audit_timeline_sequences(object_id))
    assert [int(row["sequence"]) for row in rows] == shown
    assert {row["object_type"] for row in rows} == {"model_version", "review"}


def test_audit_pages_link_objects_whose_id_holds_a_slash(client_for, auditor, make_user):
    """A review policy's events carry "<model or default>/<target>" as their object id:
    the trail, the event and the object's timeline and export all answer and link it."""
    admin = make_user(Role.PORTAL_ADMIN)
    event = audit_record(
        action="review_policy.created",
        actor=admin.audit_actor(),
        object_type="review_policy",
        object_id="demand-forecasting/production",
    )
    client = client_for(auditor)
    timeline = reverse("audit:timeline", args=["review_policy", "demand-forecasting/production"])
    assert timeline == "/audit/objects/review_policy/demand-forecasting/production/"
    for page in (reverse("audit:event_list"), reverse("audit:event_detail", args=[event.sequence])):
        response = client.get(page)
        assert response.status_code == 200 and timeline in response.content.decode()
    page = client.get(timeline)
    assert page.status_code == 200 and "review_policy.created" in page.content.decode()
    export = client.get(timeline + "export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [row["object_id"] for row in rows] == ["demand-forecasting/production"]


def audit_timeline_sequences(object_id: str) -> list[int]:
    return [
        event.sequence for event in audit_timeline(object_type="model_version", object_id=object_id)
    ]


@pytest.mark.parametrize("name", ["audit:timeline", "audit:timeline_export"])
def test_audit_timeline_refused_without_auditor_or_admin_role(client_for, make_user, name):
    response = client_for(make_user(Role.DATA_SCIENCE_LEAD)).get(reverse(name, args=["thing", "1"]))
    assert response.status_code == 403


def test_audit_export_csv_streams_the_filtered_view(client_for, auditor, make_user):
    """CSV of the filtered events, oldest first, with names and the payload as JSON."""
    lead = make_user(Role.DATA_SCIENCE_LEAD, full_name="Dana Lead")
    _events(3, actor=lead.audit_actor())
    _events(2, action="other.thing")
    response = client_for(auditor).get(reverse("audit:export", args=["csv"]), {"action": "test."})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="audit-events.csv"'
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert [row["object_id"] for row in rows] == ["0", "1", "2"]
    assert {row["actor_name"] for row in rows} == {"Dana Lead (Data science lead)"}
    assert json.loads(rows[1]["payload"]) == {"n": 1, "é": "ü"}
    assert rows[0]["hash"] == AuditEvent.objects.get(sequence=int(rows[0]["sequence"])).hash


def test_audit_export_csv_keeps_formula_like_values_as_text(client_for, auditor, make_user):
    """A name someone chose (a Google profile name) that starts like a spreadsheet
    formula is written with a leading apostrophe, so the auditor's spreadsheet shows it
    instead of running it; the JSON export keeps the value as it is."""
    named = make_user(Role.DATA_SCIENCE_LEAD, full_name='=HYPERLINK("http://evil.example","x")')
    audit_record(
        action="test.formula",
        actor=named.audit_actor(),
        object_type="thing",
        object_id="@SUM(1+1)",
        payload={"n": -1},
    )
    response = client_for(auditor).get(reverse("audit:export", args=["csv"]), {"action": "test."})
    (row,) = csv.DictReader(io.StringIO(_body(response)))
    assert row["actor_name"].startswith("'=HYPERLINK(")
    assert row["object_id"] == "'@SUM(1+1)"
    assert json.loads(row["payload"]) == {"n": -1}
    exported = json.loads(
        _body(client_for(auditor).get(reverse("audit:export", args=["json"]), {"action": "test."}))
    )
    assert exported[0]["object_id"] == "@SUM(1+1)"


def test_audit_export_json_is_one_parseable_array(client_for, admin_user):
    _events(2)
    response = client_for(admin_user).get(
        reverse("audit:export", args=["json"]), {"action": "test."}
    )
    events = json.loads(_body(response))
    assert [event["payload"] for event in events] == [{"n": 0, "é": "ü"}, {"n": 1, "é": "ü"}]
    assert events[0]["redacted"] is False


def test_audit_export_refuses_malformed_filters_with_400(client_for, auditor):
    response = client_for(auditor).get(reverse("audit:export", args=["csv"]), {"actor": "robot:1"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid filters."
    assert "actor" in body["fields"]


def test_audit_export_refused_without_auditor_or_admin_role(client_for, make_user):
    response = client_for(make_user(Role.DEVOPS)).get(reverse("audit:export", args=["csv"]))
    assert response.status_code == 403


@pytest.mark.parametrize("size", [2, 40])
def test_audit_export_query_count_is_the_same_at_two_sizes(client_for, auditor, make_user, size):
    """Names are looked up per batch of rows, not per row: the same queries for 2 and 40."""
    people = [make_user(Role.DEVOPS) for _ in range(3)]
    for i in range(size):
        _events(1, actor=people[i % 3].audit_actor())
    client = client_for(auditor)
    with CaptureQueriesContext(connection) as queries:
        body = _body(client.get(reverse("audit:export", args=["csv"]), {"action": "test."}))
    assert body.count("\n") == size + 1
    assert len(queries) == EXPORT_QUERIES, [q["sql"] for q in queries]


@pytest.mark.parametrize("size", [2, 40])
def test_audit_list_query_count_with_names_is_the_same_at_two_sizes(
    client_for, auditor, make_user, size
):
    """The page names its actors in two queries whatever the number of people."""
    people = [make_user(Role.DEVOPS) for _ in range(size)]
    for person in people:
        _events(1, actor=person.audit_actor())
    client = client_for(auditor)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("audit:event_list"))
    assert response.status_code == 200
    assert len(queries) == LIST_QUERIES, [q["sql"] for q in queries]


# Session, user, roles; the events; tokens, people and their roles. The page adds its count.
EXPORT_QUERIES = 7
LIST_QUERIES = 8

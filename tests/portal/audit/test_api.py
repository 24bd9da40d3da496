"""`GET /api/v1/audit/events` and the checkpoint and proof endpoints: scope `audit:read`,
auditors and portal admins only, filters shared with the page, paged by sequence."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.audit.merkle import consistency_verify, inclusion_verify
from portal.audit.models import AuditEvent
from portal.audit.services import audit_checkpoint_create, audit_record

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
EVENTS = reverse("api-audit-events")
# PostgreSQL reads the token with its owner's roles in one query (the token
# authentication's own test pins that); SQLite needs a second one. Then the events with
# their payloads.


def _events(n: int, *, action: str = "role.granted") -> None:
    for i in range(n):
        audit_record(action=action, actor=SYSTEM, object_type="user", object_id=i, payload={"i": i})


@pytest.fixture()
def bearer(make_user):
    def make(*scopes: str, role: str = Role.AUDITOR) -> dict:
        issued = apitoken_create(
            name="audit", owner=make_user(role), scopes=list(scopes), expires_at=None, actor=SYSTEM
        )
        return {"HTTP_AUTHORIZATION": f"Bearer {issued.secret}"}

    return make


def test_audit_events_api_pages_by_sequence_oldest_first(client, bearer):
    """`next` continues after the last sequence; following it yields every event once."""
    headers = bearer("audit:read")
    _events(5, action="test.listed")
    expected = list(
        AuditEvent.objects.filter(action__startswith="test.")
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    first = client.get(EVENTS, {"limit": 2, "action": "test."}, **headers)
    assert first.status_code == 200
    body = first.json()
    assert [e["sequence"] for e in body["events"]] == expected[:2]
    assert body["events"][0]["payload"] == {"i": 0}
    assert body["events"][0]["action"] == "test.listed"
    assert f"after={expected[1]}" in body["next"]
    seen = [e["sequence"] for e in body["events"]]
    while body["next"]:
        body = client.get(body["next"], **headers).json()
        seen += [e["sequence"] for e in body["events"]]
    assert seen == expected
    assert len(seen) == 5


def test_audit_events_api_filters_like_the_page(client, bearer):
    """Action prefix, actor, object and period filter the API as they do the page."""
    headers = bearer("audit:read")
    _events(2, action="review.decided")
    _events(3, action="role.granted")
    body = client.get(EVENTS, {"action": "review.", "object_id": "1"}, **headers).json()
    assert [(e["action"], e["object_id"]) for e in body["events"]] == [("review.decided", "1")]
    body = client.get(EVENTS, {"actor": "system:test", "since": "2000-01-01"}, **headers).json()
    assert len(body["events"]) == AuditEvent.objects.filter(actor_id="test").count() >= 5
    assert body["next"] is None
    body = client.get(EVENTS, {"until": "2000-01-01"}, **headers).json()
    assert body["events"] == []


@pytest.mark.parametrize(
    "query",
    [
        {"actor": "robot:1"},
        {"since": "2026-02-01", "until": "2026-01-01"},
        {"limit": 0},
        {"after": "x"},
    ],
)
def test_audit_events_api_refuses_malformed_filters_with_400(client, bearer, query):
    """Bad filters or paging are a 400 in the JSON error shape naming the field."""
    response = client.get(EVENTS, query, **bearer("audit:read"))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid input."
    assert body["fields"]


def test_audit_events_api_refuses_a_token_without_the_scope(client, bearer):
    """A token of an auditor without audit:read is refused, naming the scope."""
    response = client.get(EVENTS, **bearer("registry:read"))
    assert response.status_code == 403
    assert "audit:read" in response.json()["error"]


@pytest.mark.parametrize(
    "role", [Role.DATA_SCIENCE_LEAD, Role.PRIVACY_OFFICER, Role.DEVOPS, Role.MODEL_OWNER]
)
def test_audit_events_api_refuses_sessions_without_auditor_or_admin_role(
    client_for, make_user, role
):
    """Only auditors and portal admins read the trail, in the browser's session too."""
    response = client_for(make_user(role)).get(EVENTS)
    assert response.status_code == 403
    assert response.json()["error"] == "Your roles do not allow this operation."


def test_audit_events_api_admin_session_reads(client_for, admin_user):
    _events(1)
    response = client_for(admin_user).get(EVENTS)
    assert response.status_code == 200
    assert response.json()["events"][0]["sequence"] == 1


@pytest.mark.parametrize("size", [1, 30])
def test_audit_events_api_query_count_is_the_same_at_two_sizes(client, bearer, size):
    """One query for the events whatever their number (payloads joined, not fetched each)."""
    headers = bearer("audit:read")
    _events(size, action="test.counted")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(EVENTS, {"action": "test."}, **headers)
    assert response.status_code == 200
    assert len(response.json()["events"]) == size
    assert len(queries) == (3 if connection.vendor == "postgresql" else 4), [
        q["sql"] for q in queries
    ]


def test_audit_checkpoint_api_serves_the_latest_signed_checkpoint(client, bearer):
    """404 before any checkpoint, then the document `audit_verify --checkpoint` reads."""
    headers = bearer("audit:read")
    assert client.get(reverse("api-audit-checkpoint"), **headers).status_code == 404
    _events(3)
    checkpoint = audit_checkpoint_create()
    body = client.get(reverse("api-audit-checkpoint"), **headers).json()
    assert (body["type"], body["tree_size"], body["root_hash"]) == (
        "audit-checkpoint",
        checkpoint.tree_size,
        checkpoint.root_hash,
    )
    assert body["statement"] == checkpoint.statement


def test_audit_proof_apis_verify_against_checkpoints(client, bearer):
    """The inclusion proof of an event and the consistency proof between two checkpoints
    verify with the RFC 9162 algorithms against the signed roots."""
    headers = bearer("audit:read")
    _events(3)
    old = audit_checkpoint_create()
    _events(4)
    new = audit_checkpoint_create()
    body = client.get(
        reverse("api-audit-inclusion-proof"), {"sequence": 2, "tree_size": new.tree_size}, **headers
    ).json()
    assert body["root_hash"] == new.root_hash
    assert inclusion_verify(
        hashed_leaf=bytes.fromhex(body["leaf_hash"]),
        index=1,
        tree_size=new.tree_size,
        proof=[bytes.fromhex(p) for p in body["proof"]],
        root=bytes.fromhex(new.root_hash),
    )
    body = client.get(
        reverse("api-audit-consistency-proof"),
        {"first": old.tree_size, "second": new.tree_size},
        **headers,
    ).json()
    assert consistency_verify(
        first_size=old.tree_size,
        second_size=new.tree_size,
        first_root=bytes.fromhex(old.root_hash),
        second_root=bytes.fromhex(new.root_hash),
        proof=[bytes.fromhex(p) for p in body["proof"]],
    )


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("api-audit-inclusion-proof", {"sequence": 9, "tree_size": 2}),
        ("api-audit-inclusion-proof", {"sequence": 1, "tree_size": 999}),
        ("api-audit-inclusion-proof", {"sequence": "x"}),
        ("api-audit-consistency-proof", {"first": 3, "second": 2}),
        ("api-audit-consistency-proof", {"first": 1, "second": 999}),
    ],
)
def test_audit_proof_apis_refuse_sizes_outside_the_ledger_with_400(client, bearer, name, query):
    """A proof the ledger cannot give is a 400 naming the field, never a 500."""
    _events(3)
    response = client.get(reverse(name), query, **bearer("audit:read"))
    assert response.status_code == 400
    assert response.json()["fields"]

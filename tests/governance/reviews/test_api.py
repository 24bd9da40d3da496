"""The review API's contract: opening reviews (201/200/400/404), the gate's 200 and 403
bodies, the attestation, and token scope refusals."""

from datetime import timedelta

import pytest
import time_machine
from django.utils.dateparse import parse_datetime

from governance.choices import Target
from governance.reviews.choices import CheckKey, ReviewSource, ReviewState, Verdict
from governance.reviews.models import Review
from governance.reviews.services import review_decide
from portal.accounts.choices import Role
from portal.attestation import attestation_verify, public_jwks
from portal.audit.models import AuditEvent
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture()
def api(client, api_token):
    """api("gates:read") -> a client sending a token with those scopes"""

    def make(*scopes: str, owner=None):
        secret, _ = api_token(*scopes, owner=owner)
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        return client

    return make


def gate_url(version, target: str = Target.PRODUCTION) -> str:
    return f"/api/v1/gates/{version.model.slug}/{version.version}/{target}"


# --- POST /api/v1/reviews ----------------------------------------------------------------


def test_reviews_post_opens_then_returns_the_same_review(api, version, owner):
    client = api("reviews:write", owner=owner)
    body = {"model": version.model.slug, "version": version.version, "target": "staging"}
    first = client.post("/api/v1/reviews", body, content_type="application/json")
    assert first.status_code == 201
    data = first.json()
    assert data["model"] == version.model.slug and data["version"] == version.version
    assert data["state"] == "pending" and data["source"] == "ci"
    assert data["required_roles"] == {Role.DATA_SCIENCE_LEAD: 1}
    assert data["missing_roles"] == [Role.DATA_SCIENCE_LEAD]
    assert first["Location"] == f"/api/v1/reviews/{data['id']}"
    assert data["gate_url"] == gate_url(version, "staging")
    again = client.post("/api/v1/reviews", body, content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    review = Review.objects.get()
    assert review.source == ReviewSource.CI and review.requested_by == owner
    assert AuditEvent.objects.filter(action="review.opened").count() == 1


def test_reviews_post_reports_field_errors(api, version):
    client = api("reviews:write")
    response = client.post(
        "/api/v1/reviews",
        {"model": version.model.slug, "target": "moon"},
        content_type="application/json",
    )
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "Invalid input."
    assert set(data["fields"]) == {"version", "target"}
    assert not Review.objects.exists()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"external_ref": ' + "[" * 50_000 + "]" * 50_000, None),
        ('"external_ref": {"build": 1e999}', "external_ref.build"),
        ('"external_ref": "run-\\ud800"', "external_ref"),
    ],
)
def test_reviews_post_unstorable_body_is_400(api, version, raw, field):
    """Bodies no database could keep (infinity, a lone surrogate) are a 400 naming the
    value's path; one nested beyond the parser's recursion is a 400 too, never a 500."""
    client = api("reviews:write")
    body = f'{{"model": "{version.model.slug}", "version": "{version.version}", '
    body += f'"target": "staging", {raw}}}'
    response = client.post("/api/v1/reviews", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == ([field] if field else [])
    assert not Review.objects.exists()


def test_reviews_post_unknown_version_is_404(api, version):
    response = api("reviews:write").post(
        "/api/v1/reviews",
        {"model": version.model.slug, "version": "9.9.9", "target": "staging"},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert "9.9.9" in response.json()["error"]


def test_reviews_post_refuses_token_without_scope(api, version):
    response = api("gates:read").post(
        "/api/v1/reviews",
        {"model": version.model.slug, "version": version.version, "target": "staging"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert "reviews:write" in response.json()["error"]
    assert not Review.objects.exists()


def test_reviews_post_refuses_no_token(client, version):
    response = client.post(
        "/api/v1/reviews",
        {"model": version.model.slug, "version": version.version, "target": "staging"},
        content_type="application/json",
    )
    assert response.status_code in (401, 403)
    assert "error" in response.json()
    assert not Review.objects.exists()


def test_reviews_post_with_session_needs_an_opener_role(client_for, version, devops, owner):
    body = {"model": version.model.slug, "version": version.version, "target": "staging"}
    refused = client_for(devops).post("/api/v1/reviews", body, content_type="application/json")
    assert refused.status_code == 403
    opened = client_for(owner).post("/api/v1/reviews", body, content_type="application/json")
    assert opened.status_code == 201 and opened.json()["source"] == "ui"


def test_review_get_needs_reviews_read(api, version, open_review):
    review = open_review(version)
    assert api("gates:read").get(f"/api/v1/reviews/{review.pk}").status_code == 403
    response = api("reviews:read").get(f"/api/v1/reviews/{review.pk}")
    assert response.status_code == 200
    assert response.json()["failed_checks"] == [CheckKey.PREVIOUS_TARGET_APPROVED]


# --- GET /api/v1/gates/... -----------------------------------------------------------------


def test_gate_without_review_is_403_no_review(api, version):
    response = api("gates:read").get(gate_url(version))
    assert response.status_code == 403
    data = response.json()
    assert data["allowed"] is False and data["state"] == "no_review"
    assert data["review"] is None
    assert data["missing_roles"] == sorted(
        [Role.DATA_SCIENCE_LEAD, Role.DEVOPS, Role.PRIVACY_OFFICER]
    )
    assert data["failed_checks"] == [CheckKey.PREVIOUS_TARGET_APPROVED]


def test_gate_pending_names_missing_roles(api, ready_for_production, open_review, lead):
    version = ready_for_production()
    review = open_review(version)
    review_decide(
        review=review, reviewer=lead, verdict=Verdict.APPROVE, role=Role.DATA_SCIENCE_LEAD
    )
    data = api("gates:read").get(gate_url(version)).json()
    assert data == {
        "allowed": False,
        "state": "pending",
        "review": review.pk,
        "missing_roles": [Role.DEVOPS, Role.PRIVACY_OFFICER],
        "failed_checks": [],
        "expires_at": data["expires_at"],
        "error": f"{version.model.slug} {version.version} may not deploy to production: pending.",
        "fields": {},
    }


def test_gate_rejected_is_403(api, version, open_review, lead):
    review = open_review(version)
    review_decide(
        review=review,
        reviewer=lead,
        verdict=Verdict.REJECT,
        role=Role.DATA_SCIENCE_LEAD,
        comment="No",
    )
    response = api("gates:read").get(gate_url(version))
    assert response.status_code == 403 and response.json()["state"] == "rejected"


def test_gate_approved_is_200_with_verifiable_attestation(
    api, ready_for_production, open_review, lead, privacy, devops
):
    version = ready_for_production()
    review = open_review(version)
    for person, role in ((lead, Role.DATA_SCIENCE_LEAD), (privacy, Role.PRIVACY_OFFICER)):
        review_decide(review=review, reviewer=person, verdict=Verdict.APPROVE, role=role)
    client = api("gates:read")
    assert client.get(gate_url(version)).status_code == 403
    review_decide(review=review, reviewer=devops, verdict=Verdict.APPROVE, role=Role.DEVOPS)
    response = client.get(gate_url(version))
    assert response.status_code == 200
    data = response.json()
    review.refresh_from_db()
    assert data["allowed"] is True and data["review"] == review.pk
    assert [a["role"] for a in data["approvals"]] == [
        Role.DATA_SCIENCE_LEAD,
        Role.PRIVACY_OFFICER,
        Role.DEVOPS,
    ]
    assert data["approvals"][0]["reviewer"] == f"user:{lead.pk}"
    assert "@" not in str(data["approvals"])  # pseudonymous, no e-mail addresses
    claims = attestation_verify(data["attestation"], public_jwks())
    assert claims["model"] == version.model.slug
    assert claims["version"] == version.version
    assert claims["image_digest"] == version.image_digest
    assert claims["target"] == "production"
    assert claims["review"] == review.pk
    # Short-lived: ATTESTATION_TTL_MINUTES (15) after signing, with the approval's own
    # expiry in a claim of its own.
    assert claims["exp"] == claims["iat"] + 15 * 60
    assert claims["approval_expires_at"] == int(review.expires_at.timestamp())
    assert parse_datetime(data["expires_at"]) == review.expires_at
    assert int(parse_datetime(data["attestation_expires_at"]).timestamp()) == claims["exp"]
    assert {a["reviewer"] for a in claims["approvers"]} == {
        f"user:{p.pk}" for p in (lead, privacy, devops)
    }
    # another target of the same version is still closed
    assert client.get(gate_url(version, "staging")).status_code == 200
    other = ModelVersionFactory(model=version.model)
    assert client.get(gate_url(other)).status_code == 403


def test_gate_after_approval_lapses_is_expired(
    api, ready_for_production, open_review, lead, privacy, devops
):
    version = ready_for_production()
    review = open_review(version)
    for person, role in (
        (lead, Role.DATA_SCIENCE_LEAD),
        (privacy, Role.PRIVACY_OFFICER),
        (devops, Role.DEVOPS),
    ):
        review_decide(review=review, reviewer=person, verdict=Verdict.APPROVE, role=role)
    review.refresh_from_db()
    client = api("gates:read")
    with time_machine.travel(review.expires_at + timedelta(seconds=1)):
        response = client.get(gate_url(version))
    assert response.status_code == 403 and response.json()["state"] == "expired"
    assert Review.objects.get(pk=review.pk).state == ReviewState.APPROVED  # not yet recorded


def test_gate_refuses_wrong_scope_and_bad_target(api, version):
    response = api("reviews:write").get(gate_url(version))
    assert response.status_code == 403
    assert "gates:read" in response.json()["error"]
    assert "allowed" not in response.json()
    bad = api("gates:read").get(gate_url(version, "moon"))
    assert bad.status_code == 400 and "target" in bad.json()["fields"]
    missing = api("gates:read").get(f"/api/v1/gates/{version.model.slug}/9.9.9/production")
    assert missing.status_code == 404


def test_gate_query_count_does_not_grow_with_approvals(
    api, ready_for_production, open_review, lead, privacy, devops
):
    """Staging (one approval) and production (three) answer with the same queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    version = ready_for_production()
    review = open_review(version)
    for person, role in (
        (lead, Role.DATA_SCIENCE_LEAD),
        (privacy, Role.PRIVACY_OFFICER),
        (devops, Role.DEVOPS),
    ):
        review_decide(review=review, reviewer=person, verdict=Verdict.APPROVE, role=role)
    client = api("gates:read")
    client.get(gate_url(version, "staging"))  # the token's last-used time is written once
    client.get(gate_url(version))  # and each gate's attestation is signed and kept once
    with CaptureQueriesContext(connection) as one:
        assert client.get(gate_url(version, "staging")).status_code == 200
    with CaptureQueriesContext(connection) as three:
        assert client.get(gate_url(version)).status_code == 200
    assert len(three) == len(one)

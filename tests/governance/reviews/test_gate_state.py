"""The gate's stored answer (GateState): one query per gate request after the token,
never behind the reviews whatever service changed them, and the attestation kept until
shortly before it expires, re-signed after a key rotation."""

import json
import logging
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.choices import Target
from governance.reviews.api import GateApi
from governance.reviews.choices import Verdict
from governance.reviews.models import POLICY_SNAPSHOT_FIELDS, GateState, ReviewPolicy
from governance.reviews.selectors import gate_answer, gate_answer_compute
from governance.reviews.services import (
    DecisionRefused,
    policy_update,
    review_decide,
    review_open,
    review_recheck,
    reviews_evidence_changed,
    reviews_expire,
)
from governance.reviews.services.gates import gate_state_refresh
from governance.services.registry import version_set_state
from portal.accounts.choices import Role
from portal.audit.actors import Actor
from portal.changes.configuration import attestation_keys_approved
from portal.changes.models import ChangeRequest
from portal.changes.services import change_approve
from portal.security.models import RefusalWindow
from tests.factories import ModelVersionFactory
from tests.portal.changes.test_configuration import key

pytestmark = pytest.mark.django_db

BOARD = {
    "lead": Role.DATA_SCIENCE_LEAD,
    "privacy": Role.PRIVACY_OFFICER,
    "devops": Role.DEVOPS,
}


def gate_url(version, target: str = Target.STAGING) -> str:
    return f"/api/v1/gates/{version.model.slug}/{version.version}/{target}"


@pytest.fixture()
def gate_client(client, api_token):
    secret, _ = api_token("gates:read")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def _approved_staging(version, owner, lead):
    review, _ = review_open(
        version=version, target=Target.STAGING, requested_by_actor=owner.audit_actor(), source="ui"
    )
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=BOARD["lead"])
    return review


def _assert_current(version) -> None:
    """The stored answer equals a fresh one for every target; an allowed one's
    attestation (the cached one when there is one) says what the fresh answer says."""
    from governance.reviews.gates import gate_attestation

    for target in Target.values:
        args = {"model_slug": version.model.slug, "version": version.version, "target": target}
        stored, fresh = gate_answer(**args), gate_answer_compute(**args)
        assert stored == fresh, target
        if not stored.allowed:
            continue
        token, expires_at = gate_attestation(answer=stored)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["review"] == fresh.review_id
        assert claims["approvers"] == [
            {"role": a["role"], "reviewer": a["reviewer"]} for a in fresh.approvals
        ]
        assert claims["approval_expires_at"] == int(fresh.expires_at.timestamp())
        assert (claims["model"], claims["version"], claims["target"]) == (
            fresh.model,
            fresh.version,
            target,
        )
        assert claims["image_digest"] == fresh.image_digest
        now = datetime.now(tz=UTC)
        assert now < expires_at <= fresh.expires_at
        assert expires_at <= now + timedelta(minutes=django_settings.ATTESTATION_TTL_MINUTES)


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "pending"])
def test_gate_request_is_one_query_after_the_token(
    gate_client, version, owner, lead, approved, django_assert_num_queries
):
    """After the token's lookup (its owner's roles in the same query), the gate reads
    one row, approved (attestation cached) or pending alike. A pending answer is the
    gate's answer to an authorised caller, not a refusal of them: nothing is counted."""
    review, _ = review_open(
        version=version, target=Target.STAGING, requested_by_actor=owner.audit_actor(), source="ui"
    )
    if approved:
        review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=BOARD["lead"])
    gate_client.get(gate_url(version))  # last use recorded, attestation signed and kept
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 3):
        response = gate_client.get(gate_url(version))
    assert response.status_code == (200 if approved else 403)
    assert response.json()["review"] == review.pk


def _gate_statements_prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall() if "reviews_gatestate" in row[0]]


@pytest.mark.postgres
def test_gate_query_is_prepared_once_per_connection(gate_client, version, owner, lead):
    """On PostgreSQL the gate's one query is a prepared statement of the connection:
    planned on the first request, reused by the next ones, whose answers still follow
    the reviews (an approval after the first request opens the gate)."""
    review, _ = review_open(
        version=version, target=Target.STAGING, requested_by_actor=owner.audit_actor(), source="ui"
    )
    assert gate_client.get(gate_url(version)).status_code == 403
    assert len(_gate_statements_prepared()) == 1
    review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=BOARD["lead"])
    response = gate_client.get(gate_url(version))
    assert response.status_code == 200
    assert response.json()["review"] == review.pk
    assert len(_gate_statements_prepared()) == 1
    _assert_current(version)


@pytest.mark.postgres
def test_gate_answers_unprepared_when_prepared_statements_are_off(
    gate_client, version, owner, lead, django_assert_num_queries
):
    """DATABASE_PREPARED_STATEMENTS=false (psycopg's prepare_threshold None, for a
    pooler that cannot keep prepared statements): the gate answers the same, in the
    same queries, and leaves no prepared statement on the server."""
    _approved_staging(version, owner, lead)
    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        gate_client.get(gate_url(version))
        with django_assert_num_queries(2):
            response = gate_client.get(gate_url(version))
        assert _gate_statements_prepared() == []
    finally:
        raw.prepare_threshold = threshold
    assert response.status_code == 200
    _assert_current(version)


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "pending"])
def test_gate_body_is_what_the_documented_serializers_give(
    gate_client, version, owner, lead, approved
):
    """The gate builds its body without serializers per request; it must still be
    exactly what the schema's serializers make of the same answer, times in the
    portal's time zone with microseconds, a summer time too."""
    with time_machine.travel(datetime(2026, 7, 1, 9, 30, 15, 123456, tzinfo=UTC), tick=False):
        review, _ = review_open(
            version=version,
            target=Target.STAGING,
            requested_by_actor=owner.audit_actor(),
            source="ui",
        )
        if approved:
            review_decide(review=review, reviewer=lead, verdict=Verdict.APPROVE, role=BOARD["lead"])
        body = gate_client.get(gate_url(version)).json()
        answer = gate_answer(
            model_slug=version.model.slug, version=version.version, target=Target.STAGING
        )
    if approved:
        expected = GateApi.AllowedSerializer(
            {
                "allowed": True,
                "review": answer.review_id,
                "approvals": [GateApi.ApprovalSerializer(a).data for a in answer.approvals],
                "expires_at": answer.expires_at,
                "attestation": body["attestation"],
                "attestation_expires_at": answer.cache.expires_at,
            }
        ).data
    else:
        expected = GateApi.RefusedSerializer(
            {
                "allowed": False,
                "state": answer.state,
                "review": answer.review_id,
                "missing_roles": answer.missing_roles,
                "failed_checks": answer.failed_checks,
                "expires_at": answer.expires_at,
                "error": f"{version.model.slug} {version.version} may not deploy to staging: "
                "pending.",
                "fields": {},
            }
        ).data
    assert body == json.loads(json.dumps(expected))
    assert "+01:00" in body["expires_at"]  # London summer time, as the serializer writes it


def test_gate_not_yet_is_not_logged_as_a_warning_but_a_refused_caller_is(
    gate_client, client, api_token, version, owner, caplog
):
    """CI polls a pending gate: its 403 answer is no warning line. A token without
    gates:read is refused by the permission and is still logged."""
    review_open(
        version=version, target=Target.STAGING, requested_by_actor=owner.audit_actor(), source="ui"
    )
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert gate_client.get(gate_url(version)).status_code == 403
        assert not [r for r in caplog.records if r.name == "django.request"]
        secret, _ = api_token("reviews:read")
        refused = client.get(gate_url(version), HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert refused.status_code == 403
    assert [r.status_code for r in caplog.records if r.name == "django.request"] == [403]


def test_gate_attestation_is_kept_then_signed_anew_before_it_expires(
    gate_client, version, owner, lead
):
    """The same attestation comes back while most of its 15 minutes are left; with
    less than a fifth left a new one is signed, expiring 15 minutes after signing and
    carrying the approval's own expiry."""
    review = _approved_staging(version, owner, lead)
    review.refresh_from_db()
    start = datetime.now(tz=UTC)
    with time_machine.travel(start, tick=False) as clock:
        first = gate_client.get(gate_url(version)).json()
        clock.shift(timedelta(minutes=11))
        assert gate_client.get(gate_url(version)).json()["attestation"] == first["attestation"]
        clock.shift(timedelta(minutes=2))
        renewed = gate_client.get(gate_url(version)).json()
    assert renewed["attestation"] != first["attestation"]
    claims = jwt.decode(renewed["attestation"], options={"verify_signature": False})
    assert claims["exp"] == int((start + timedelta(minutes=28)).timestamp())
    assert claims["approval_expires_at"] == int(review.expires_at.timestamp())
    assert renewed["attestation_expires_at"] == (start + timedelta(minutes=28)).isoformat().replace(
        "+00:00", "Z"
    )


def test_gate_attestation_never_outlives_the_approval(settings, gate_client, version, owner, lead):
    """An approval that lapses within the attestation's lifetime caps its expiry."""
    review = _approved_staging(version, owner, lead)
    review.refresh_from_db()
    with time_machine.travel(review.expires_at - timedelta(minutes=5), tick=False):
        data = gate_client.get(gate_url(version)).json()
    claims = jwt.decode(data["attestation"], options={"verify_signature": False})
    assert claims["exp"] == int(review.expires_at.timestamp())


def test_gate_attestation_ttl_is_a_setting(settings, gate_client, version, owner, lead):
    """ATTESTATION_TTL_MINUTES sets how long an attestation verifies."""
    settings.ATTESTATION_TTL_MINUTES = 2
    _approved_staging(version, owner, lead)
    claims = jwt.decode(
        gate_client.get(gate_url(version)).json()["attestation"],
        options={"verify_signature": False},
    )
    assert claims["exp"] == claims["iat"] + 120


def test_gate_attestation_is_signed_anew_after_a_key_rotation(
    settings, gate_client, version, owner, lead, make_user
):
    """A cached attestation of the old key is not handed out once a new signing key
    is approved."""
    old = key("old")
    settings.ATTESTATION_SIGNING_KEYS = [old]
    attestation_keys_approved()
    _approved_staging(version, owner, lead)
    first = gate_client.get(gate_url(version)).json()["attestation"]
    assert gate_client.get(gate_url(version)).json()["attestation"] == first
    settings.ATTESTATION_SIGNING_KEYS = [key("new"), old]
    assert gate_client.get(gate_url(version)).json()["attestation"] == first  # not approved
    change_approve(
        change=ChangeRequest.objects.get(state="pending"),
        approved_by=make_user(Role.PORTAL_ADMIN),
    )
    rotated = gate_client.get(gate_url(version)).json()["attestation"]
    assert jwt.get_unverified_header(rotated)["kid"] == "new"


def test_gate_attestation_of_an_older_answer_is_not_stored(version, owner, lead, devops):
    """A decision committed between a request's read and its write of the newly signed
    attestation wins: the row's revision moved, so the older answer's attestation is
    dropped."""
    from governance.reviews.gates import gate_attestation

    _approved_staging(version, owner, lead)
    read = gate_answer(model_slug=version.model.slug, version=version.version, target="staging")
    gate_state_refresh(version_id=version.pk, target=Target.STAGING)  # a change meanwhile
    gate_attestation(answer=read)
    assert GateState.objects.get(version=version, target=Target.STAGING).attestation == ""


def test_gate_page_and_api_show_when_the_last_attestation_expires(
    gate_client, client_for, version, owner, lead
):
    """The version page shows the expiry of the last attestation the gate handed out,
    and says "expired" once it has passed."""
    _approved_staging(version, owner, lead)
    data = gate_client.get(gate_url(version)).json()
    row = GateState.objects.get(version=version, target=Target.STAGING)
    assert data["attestation_expires_at"] is not None
    assert row.attestation_expires_at is not None
    page_url = f"/models/{version.model.slug}/versions/{version.version}/"
    page = client_for(lead).get(page_url)
    assert page.status_code == 200
    assert "staging expires" in page.content.decode()
    with time_machine.travel(row.attestation_expires_at + timedelta(minutes=1)):
        later = client_for(lead).get(page_url).content.decode()
    assert "staging expired" in later
    assert "staging expires" not in later


# --- the stored answer never lags: every service, in random order ----------------------

OPERATIONS = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(Target.values)),
    st.tuples(
        st.sampled_from(["approve", "reject", "request_changes", "withdraw"]),
        st.sampled_from(sorted(BOARD)),
        st.sampled_from(Target.values),
    ),
    st.tuples(st.just("evidence")),
    st.tuples(st.just("recheck"), st.sampled_from(Target.values)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("policy"), st.sampled_from(Target.values), st.integers(1, 2)),
    st.tuples(st.just("clock"), st.sampled_from([1, 60, 60 * 24, 60 * 24 * 20, 60 * 24 * 40])),
    st.tuples(st.just("ttl"), st.sampled_from([2, 15, 60])),
    st.tuples(st.just("discard")),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=12))
def test_gate_state_equals_a_fresh_computation_after_every_service_call(
    operations, make_user, admin_user
):
    """After each decision, withdrawal, evidence change, recheck, expiry run, policy
    edit (tightened at once, loosened through a change request a second admin approves),
    clock move, attestation lifetime change and the version discarded, the answer read
    from the stored row equals one computed afresh, and an allowed answer's attestation
    (cached since an earlier step or not) says what the fresh answer says."""
    second_admin = make_user(Role.PORTAL_ADMIN)
    start = datetime(2026, 6, 1, 9, tzinfo=UTC)
    with (
        time_machine.travel(start, tick=False) as clock,
        override_settings(ATTESTATION_TTL_MINUTES=15),
        transaction.atomic(),
    ):
        board = {name: make_user(role) for name, role in BOARD.items()}
        owner = make_user(Role.MODEL_OWNER)
        version = ModelVersionFactory()
        for operation in operations:
            _apply(operation, version, board, owner, admin_user, second_admin, clock)
            _assert_current(version)
        transaction.set_rollback(True)


def _live_review(version, target):
    from governance.reviews.choices import LIVE_STATES

    return version.reviews.filter(target=target, state__in=LIVE_STATES).first()


def _apply(operation, version, board, owner, admin, second_admin, clock) -> None:
    kind = operation[0]
    try:
        if kind == "open":
            review_open(
                version=version,
                target=operation[1],
                requested_by_actor=owner.audit_actor(),
                source="ui",
            )
        elif kind in ("approve", "reject", "request_changes", "withdraw"):
            review = _live_review(version, operation[2])
            if review is not None:
                review_decide(
                    review=review,
                    reviewer=board[operation[1]],
                    verdict=kind,
                    role=BOARD[operation[1]],
                    comment="" if kind in (Verdict.APPROVE, Verdict.WITHDRAW) else "because",
                )
        elif kind == "evidence":
            with transaction.atomic():
                reviews_evidence_changed(
                    version=version, reason="card edited", actor=Actor.system("tests")
                )
        elif kind == "recheck":
            review = _live_review(version, operation[1])
            if review is not None:
                review_recheck(review=review, actor=Actor.system("tests"))
        elif kind == "expire":
            reviews_expire()
        elif kind == "policy":
            _policy_edit(operation[1], operation[2], admin, second_admin)
        elif kind == "clock":
            clock.shift(timedelta(minutes=operation[1]))
        elif kind == "ttl":
            django_settings.ATTESTATION_TTL_MINUTES = operation[1]
        elif kind == "discard":
            version_set_state(version=version, state="discarded", actor=admin.audit_actor())
    except (DecisionRefused, ValidationError):
        pass  # refused as the services refuse it: the answer must still be current


def _policy_edit(target, quorum, admin, second_admin) -> None:
    policy = ReviewPolicy.objects.get(model=None, target=target)
    rules = {name: getattr(policy, name) for name in POLICY_SNAPSHOT_FIELDS}
    rules["required_roles"] = {**rules["required_roles"], Role.DATA_SCIENCE_LEAD: quorum}
    result = policy_update(policy=policy, data=rules, actor=admin.audit_actor())
    if isinstance(result, ChangeRequest):
        change_approve(change=result, approved_by=second_admin)


def test_gate_not_yet_is_an_answer_but_a_token_without_the_scope_is_a_counted_refusal(
    gate_client, client, api_token, version, owner
):
    """CI polling a version the board has not approved gets the gate's answer (403 with
    the state), which is not a refusal of the caller: no refusal window. A token without
    gates:read asking the same is refused and counted against the token."""
    review_open(
        version=version, target=Target.STAGING, requested_by_actor=owner.audit_actor(), source="ui"
    )
    for _ in range(3):
        response = gate_client.get(gate_url(version))
        assert response.status_code == 403
        assert response.json()["state"] == "pending"
    assert not RefusalWindow.objects.exists()
    secret, _ = api_token("reviews:read")
    refused = client.get(gate_url(version), HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert refused.status_code == 403
    window = RefusalWindow.objects.get()
    assert window.count == 1
    assert window.source.startswith("token:")


# --- paths that move the answer outside the review services ------------------------------


def test_gate_attestation_is_signed_anew_when_the_ttl_is_lowered(
    settings, gate_client, version, owner, lead
):
    """Lowering ATTESTATION_TTL_MINUTES (say after an incident) takes effect at once: an
    attestation cached under the longer lifetime is not handed out again, since it
    would verify for longer than the setting now allows."""
    _approved_staging(version, owner, lead)
    start = datetime.now(tz=UTC)
    settings.ATTESTATION_TTL_MINUTES = 60
    with time_machine.travel(start, tick=False):
        first = gate_client.get(gate_url(version)).json()
        settings.ATTESTATION_TTL_MINUTES = 15
        again = gate_client.get(gate_url(version)).json()
    assert again["attestation"] != first["attestation"]
    claims = jwt.decode(again["attestation"], options={"verify_signature": False})
    assert claims["exp"] <= int((start + timedelta(minutes=15)).timestamp())


def test_gate_refuses_a_discarded_version_though_its_review_was_approved(
    gate_client, version, owner, lead, admin_user
):
    """A version discarded after its approval (by a person, or the training pipeline
    finding it no better than production) may not deploy: the portal would refuse to
    record it serving a target. The gate answers 403 "discarded", stored and fresh
    alike, and hands out no attestation."""
    review = _approved_staging(version, owner, lead)
    assert gate_client.get(gate_url(version)).status_code == 200
    version_set_state(version=version, state="discarded", actor=admin_user.audit_actor())
    response = gate_client.get(gate_url(version))
    assert response.status_code == 403
    body = response.json()
    assert body["state"] == "discarded"
    assert body["review"] == review.pk
    assert "attestation" not in body
    _assert_current(version)
    never_reviewed = gate_client.get(gate_url(version, Target.PRODUCTION)).json()
    assert never_reviewed["state"] == "discarded"


def test_gate_attestation_of_a_removed_key_is_never_handed_out_again(
    settings, gate_client, version, owner, lead, make_user
):
    """The signing key taken out of the environment (a compromised key revoked): the
    attestation cached under it is not handed out again, neither while the removal
    waits for a second admin (no configured key is approved: 503) nor after."""
    old = key("old")
    settings.ATTESTATION_SIGNING_KEYS = [old]
    attestation_keys_approved()
    _approved_staging(version, owner, lead)
    first = gate_client.get(gate_url(version)).json()["attestation"]
    assert jwt.get_unverified_header(first)["kid"] == "old"
    settings.ATTESTATION_SIGNING_KEYS = [key("new")]
    waiting = gate_client.get(gate_url(version))
    assert waiting.status_code == 503
    assert "attestation" not in waiting.json()
    change_approve(
        change=ChangeRequest.objects.get(state="pending"),
        approved_by=make_user(Role.PORTAL_ADMIN),
    )
    rotated = gate_client.get(gate_url(version)).json()["attestation"]
    assert jwt.get_unverified_header(rotated)["kid"] == "new"


def test_gate_closes_at_the_instant_the_approval_lapses(gate_client, version, owner, lead):
    """At expires_at exactly the gate says expired (as the expiry task and a decision
    see it), before and after the task has run; a microsecond earlier it still lets the
    version through with an attestation that stops verifying by then."""
    review = _approved_staging(version, owner, lead)
    review.refresh_from_db()
    with time_machine.travel(review.expires_at - timedelta(microseconds=1), tick=False):
        before = gate_client.get(gate_url(version))
        _assert_current(version)
    assert before.status_code == 200
    claims = jwt.decode(before.json()["attestation"], options={"verify_signature": False})
    assert claims["exp"] <= review.expires_at.timestamp()
    with time_machine.travel(review.expires_at, tick=False):
        lapsed = gate_client.get(gate_url(version))
        _assert_current(version)
        assert reviews_expire() == 1
        after_task = gate_client.get(gate_url(version))
        _assert_current(version)
    assert (lapsed.status_code, lapsed.json()["state"]) == (403, "expired")
    assert (after_task.status_code, after_task.json()["state"]) == (403, "expired")

"""The Cloud Deploy approvals push hook: Pub/Sub pushes signed the way Google signs them
(keys the tests make, certificates served locally), and the real google-cloud-deploy
client reading rollouts and releases from a local Cloud Deploy stand-in."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import rsa

from governance.choices import Target
from governance.reviews.choices import PushOutcome, ReviewSource, ReviewState
from governance.reviews.models import PubSubMessage, Review
from portal.audit.models import AuditEvent
from portal.pubsub import pubsub_certs_cache_clear
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.fakes.clouddeploy_server import (
    FakeCloudDeployServer,
    FakeGoogleOidc,
    approvals_push_body,
)

HOOK = "/hooks/clouddeploy"
AUDIENCE = "https://governance.zeromargin.example/hooks/clouddeploy"
SERVICE_ACCOUNT = "clouddeploy-push@zm-ml-prod.iam.gserviceaccount.com"
PROJECT_NUMBER = "123456789012"  # zm-ml-prod's number, as Pub/Sub messages name it
PIPELINE = "projects/zm-ml-prod/locations/europe-west1/deliveryPipelines/recommender"
RELEASE = f"{PIPELINE}/releases/rel-42"
ROLLOUT = f"{RELEASE}/rollouts/rel-42-to-ml-staging-0001"


@pytest.fixture(autouse=True)
def _fresh_certs_cache():
    # Ports are reused between tests: a cached certificate must not leak into the next.
    pubsub_certs_cache_clear()
    yield
    pubsub_certs_cache_clear()


@pytest.fixture()
def google(settings):
    """Google's signing side of a push subscription, with the portal configured for it."""
    with FakeGoogleOidc(audience=AUDIENCE, service_account=SERVICE_ACCOUNT) as fake:
        settings.PUBSUB_PUSH_AUDIENCE = AUDIENCE
        settings.PUBSUB_PUSH_SERVICE_ACCOUNT = SERVICE_ACCOUNT
        settings.GOOGLE_OIDC_CERTS_URL = fake.certs_url
        yield fake


@pytest.fixture()
def cloud(settings):
    """Cloud Deploy's REST API, empty; `deploy` below arranges a release and rollout."""
    with FakeCloudDeployServer(project_numbers={PROJECT_NUMBER: "zm-ml-prod"}) as fake:
        settings.CLOUD_DEPLOY_API_ENDPOINT = fake.url
        settings.CLOUD_DEPLOY_TARGETS = {
            "ml-staging": "staging",
            "ml-canary": "canary",
            "ml-production": "production",
        }
        yield fake


@pytest.fixture()
def version(db):
    """A registered product-recommendation version with complete evidence."""
    return ModelVersionFactory(model=RegisteredModelFactory(slug="product-recommendation"))


def release_of(cloud, version, name: str = RELEASE, *, digest: str | None = None, **extra):
    return cloud.add_release(
        name,
        annotations={
            "model-governance/model": version.model.slug,
            "model-governance/version": version.version,
        },
        images={
            "recommender": f"europe-docker.pkg.dev/zm/models/rec@{digest or version.image_digest}"
        },
        **extra,
    )


@pytest.fixture()
def deploy(cloud, version):
    """deploy(rollout_id="...", target_id="ml-staging") -> the rollout's name: a release
    of `version` and a rollout of it waiting for approval."""

    def make(rollout_id: str = "rel-42-to-ml-staging-0001", target_id: str = "ml-staging"):
        if RELEASE not in cloud.releases:
            release_of(cloud, version)
        cloud.add_rollout(RELEASE, rollout_id, target_id=target_id)
        return f"{RELEASE}/rollouts/{rollout_id}"

    return make


@pytest.fixture()
def push(client, google):
    """push(body, **token_claims) -> the hook's response to a push signed by Google."""

    def send(body: bytes, authorization: str | None = "signed", **claims):
        headers = {}
        if authorization == "signed":
            headers["HTTP_AUTHORIZATION"] = google.authorization(**claims)
        elif authorization is not None:
            headers["HTTP_AUTHORIZATION"] = authorization
        return client.post(HOOK, data=body, content_type="application/json", **headers)

    return send


def required(rollout: str = ROLLOUT, target_id: str = "ml-staging", **kwargs) -> bytes:
    return approvals_push_body(rollout=rollout, target_id=target_id, **kwargs)


def audits(action: str) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=action)
        .select_related("payload_record")
        .order_by("sequence")
    )


# --- a Required message opens one review -------------------------------------------------


@pytest.mark.django_db
def test_hook_required_message_opens_one_review_for_the_mapped_target(push, deploy, cloud, version):
    rollout = deploy()

    response = push(required(rollout, message_id="m-1"))

    assert response.status_code == 200
    assert response.json()["outcome"] == PushOutcome.REVIEW_OPENED
    review = Review.objects.get()
    assert (review.version, review.target, review.state) == (
        version,
        Target.STAGING,
        ReviewState.PENDING,
    )
    assert review.source == ReviewSource.CLOUD_DEPLOY
    assert review.external_ref == rollout
    assert review.requested_by_actor == "system:clouddeploy"
    assert review.requested_by is None
    assert response.json()["review"] == review.pk
    record = PubSubMessage.objects.get()
    assert record.message_id == "m-1"
    assert record.subscription == "projects/zm-ml-prod/subscriptions/portal-clouddeploy-approvals"
    assert record.attributes["Action"] == "Required"
    assert record.attributes["TargetId"] == "ml-staging"
    assert (record.rollout, record.review, record.outcome) == (
        rollout,
        review,
        PushOutcome.REVIEW_OPENED,
    )
    # The rollout, then its release, read with the real client.
    assert [(r.method, r.path) for r in cloud.requests] == [
        ("GET", f"/v1/{rollout}"),
        ("GET", f"/v1/{RELEASE}"),
    ]
    [received] = audits("hook.clouddeploy.received")
    assert received.actor_id == "clouddeploy"
    assert received.payload_record.data["rollout"] == rollout
    assert received.payload_record.data["review"] == review.pk
    [opened] = audits("review.opened")
    assert opened.payload_record.data["source"] == "clouddeploy"
    assert opened.payload_record.data["external_ref"] == rollout


@pytest.mark.django_db
def test_hook_required_message_for_production_opens_a_production_review(push, deploy):
    rollout = deploy("rel-42-to-ml-production-0001", target_id="ml-production")

    response = push(required(rollout, target_id="ml-production"))

    assert response.status_code == 200
    review = Review.objects.get()
    assert review.target == Target.PRODUCTION
    assert set(review.required_roles) == {"data_science_lead", "privacy_officer", "devops"}


@pytest.mark.django_db
def test_hook_replayed_message_is_acknowledged_without_acting_twice(push, deploy, cloud):
    rollout = deploy()
    body = required(rollout, message_id="m-replayed")
    first = push(body)
    calls = len(cloud.requests)
    events = AuditEvent.objects.count()

    again = push(body)

    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["review"] == first.json()["review"]
    assert Review.objects.count() == 1
    assert PubSubMessage.objects.count() == 1
    assert len(cloud.requests) == calls  # Cloud Deploy is not even asked again
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_hook_second_rollout_of_the_same_version_joins_the_live_review(push, deploy):
    first = deploy("rel-42-to-ml-staging-0001")
    second = deploy("rel-42-to-ml-staging-0002")
    push(required(first, message_id="m-1"))

    response = push(required(second, message_id="m-2"))

    assert response.json()["outcome"] == PushOutcome.REVIEW_EXISTING
    review = Review.objects.get()
    assert review.external_ref == first
    assert set(review.pubsub_messages.values_list("rollout", flat=True)) == {first, second}


# --- messages acknowledged without a review ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["Approved", "Rejected", ""])
def test_hook_other_actions_are_recorded_and_acknowledged(push, deploy, cloud, action):
    rollout = deploy()

    response = push(required(rollout, action=action, message_id=f"m-{action}"))

    assert response.status_code == 200
    record = PubSubMessage.objects.get()
    assert record.outcome == PushOutcome.IGNORED
    assert record.action == action
    assert not Review.objects.exists()
    assert cloud.requests == []
    assert audits("hook.clouddeploy.received")[0].payload_record.data["outcome"] == "ignored"


def _refused(response, reason: str) -> PubSubMessage:
    assert response.status_code == 200, "acknowledged, so Pub/Sub stops redelivering"
    assert response.json()["outcome"] == PushOutcome.REFUSED
    assert reason in response.json()["reason"]
    record = PubSubMessage.objects.get()
    assert record.outcome == PushOutcome.REFUSED
    assert reason in record.reason
    [event] = audits("hook.clouddeploy.refused")
    assert reason in event.payload_record.data["reason"]
    assert event.object_id == record.message_id
    assert not Review.objects.exists()
    return record


@pytest.mark.django_db
def test_hook_unknown_version_is_refused_and_acknowledged(push, cloud, version):
    cloud.add_release(
        RELEASE,
        annotations={
            "model-governance/model": "product-recommendation",
            "model-governance/version": "9.9.9",
        },
    )
    cloud.add_rollout(RELEASE, "rel-42-to-ml-staging-0001", target_id="ml-staging")

    _refused(push(required()), "no registered version product-recommendation 9.9.9")


@pytest.mark.django_db
def test_hook_unknown_model_is_refused_and_a_replay_changes_nothing(push, cloud, version):
    cloud.add_release(RELEASE, labels={"model": "fraud-detection", "model-version": "1"})
    cloud.add_rollout(RELEASE, "rel-42-to-ml-staging-0001", target_id="ml-staging")
    body = required(message_id="m-unknown")
    _refused(push(body), "no registered version fraud-detection 1")

    again = push(body)

    assert again.json()["duplicate"] is True
    assert PubSubMessage.objects.count() == 1
    assert len(audits("hook.clouddeploy.refused")) == 1


@pytest.mark.django_db
def test_hook_release_without_model_annotations_is_refused(push, cloud, version):
    cloud.add_release(RELEASE)
    cloud.add_rollout(RELEASE, "rel-42-to-ml-staging-0001", target_id="ml-staging")

    _refused(push(required()), "names no model and version")


@pytest.mark.django_db
def test_hook_unmapped_target_is_refused(push, deploy):
    rollout = deploy("rel-42-to-sandbox-0001", target_id="sandbox")

    _refused(push(required(rollout, target_id="sandbox")), "'sandbox' maps to no portal target")


@pytest.mark.django_db
def test_hook_release_deploying_another_image_is_refused(push, cloud, version):
    release_of(cloud, version, digest="sha256:" + "ab" * 32)
    cloud.add_rollout(RELEASE, "rel-42-to-ml-staging-0001", target_id="ml-staging")

    _refused(push(required()), "not the version's image")


@pytest.mark.django_db
def test_hook_unknown_rollout_is_refused(push, cloud, version):
    release_of(cloud, version)

    _refused(push(required()), "not found")


@pytest.mark.django_db
def test_hook_discarded_version_is_refused(push, deploy, version):
    from governance.choices import LifecycleState

    rollout = deploy()
    version.state = LifecycleState.DISCARDED
    version.save(update_fields=["state"])

    record = _refused(push(required(rollout)), "not reviewed for deployment")

    assert record.review is None


@pytest.mark.django_db
def test_hook_rollout_no_longer_waiting_is_recorded_as_ignored(push, cloud, version):
    release_of(cloud, version)
    cloud.add_rollout(
        RELEASE, "rel-42-to-ml-staging-0001", target_id="ml-staging", approval_state="APPROVED"
    )

    response = push(required())

    assert response.json()["outcome"] == PushOutcome.IGNORED
    assert "APPROVED" in response.json()["reason"]
    assert not Review.objects.exists()


@pytest.mark.django_db
def test_hook_cloud_deploy_away_asks_for_redelivery_and_records_nothing(push, deploy, cloud):
    rollout = deploy()
    cloud.fail("GET", r"/rollouts/", status=503)
    body = required(rollout, message_id="m-later")

    response = push(body)

    assert response.status_code == 503
    assert response.json()["fields"] == {}
    assert not PubSubMessage.objects.exists()
    assert not Review.objects.exists()
    # Pub/Sub delivers it again once Cloud Deploy answers: now it is acted on.
    assert push(body).json()["outcome"] == PushOutcome.REVIEW_OPENED
    assert Review.objects.count() == 1


@pytest.mark.django_db
def test_hook_without_google_credentials_asks_for_redelivery(
    push, deploy, settings, monkeypatch, tmp_path
):
    rollout = deploy()
    settings.CLOUD_DEPLOY_API_ENDPOINT = ""  # Google's own endpoint: credentials needed
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))

    response = push(required(rollout))

    assert response.status_code == 503
    assert not PubSubMessage.objects.exists()


# --- pushes that are not Google's ---------------------------------------------------------


def _assert_refused_401(response, cloud, reason_pattern: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"error": "The push request is not authenticated.", "fields": {}}
    assert response["WWW-Authenticate"].startswith("Bearer")
    [event] = audits("hook.clouddeploy.refused")
    assert event.actor_type == "anonymous"
    assert event.payload_record.data["status"] == 401
    import re

    assert re.search(reason_pattern, event.payload_record.data["reason"]), event.payload_record.data
    assert not PubSubMessage.objects.exists()
    assert not Review.objects.exists()
    assert cloud.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://elsewhere.example/hooks/clouddeploy"}, r"(?i)audience"),
        ({"email": "intruder@zm-ml-prod.iam.gserviceaccount.com"}, "another service account"),
        ({"email_verified": False}, "not verified"),
        ({"email_verified": None}, "not verified"),
        ({"iss": "https://evil.example"}, "not issued by Google"),
    ],
    ids=["wrong-audience", "wrong-service-account", "unverified-email", "no-email-verified", "iss"],
)
def test_hook_refuses_tokens_with_the_wrong_claims(push, deploy, cloud, claims, reason):
    rollout = deploy()

    response = push(required(rollout), **claims)

    _assert_refused_401(response, cloud, reason)


@pytest.mark.django_db
def test_hook_refuses_an_expired_token(push, deploy, cloud, google):
    rollout = deploy()
    token = google.token()

    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1, minutes=5), tick=False):
        response = push(required(rollout), authorization=f"Bearer {token}")

    _assert_refused_401(response, cloud, r"(?i)expired|too late")


@pytest.mark.django_db
def test_hook_refuses_a_signature_from_another_key(push, deploy, cloud, google):
    rollout = deploy()
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = google.token(signing_key=impostor)

    response = push(required(rollout), authorization=f"Bearer {token}")

    _assert_refused_401(response, cloud, "token refused")
    # The token itself is never written to the ledger.
    assert token not in json.dumps(audits("hook.clouddeploy.refused")[0].payload_record.data)


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwYXNz", "Bearer "])
def test_hook_refuses_a_request_without_a_bearer_token(push, deploy, cloud, authorization):
    rollout = deploy()

    response = push(required(rollout), authorization=authorization)

    _assert_refused_401(response, cloud, "no bearer token")


@pytest.mark.django_db
def test_hook_refuses_everything_when_no_service_account_is_configured(
    push, deploy, cloud, settings
):
    rollout = deploy()
    settings.PUBSUB_PUSH_SERVICE_ACCOUNT = ""

    _assert_refused_401(push(required(rollout)), cloud, "no push service account")


# --- bodies that are not push envelopes ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "no message object"),
        (json.dumps({"message": {"messageId": "1"}}).encode(), "subscription is missing"),
        (
            json.dumps(
                {"message": {"publishTime": "2026-01-01T00:00:00Z"}, "subscription": "s"}
            ).encode(),
            "messageId is missing",
        ),
        (
            json.dumps(
                {
                    "message": {
                        "messageId": "1",
                        "publishTime": "2026-01-01T00:00:00Z",
                        "data": "%%%",
                    },
                    "subscription": "s",
                }
            ).encode(),
            "not valid base64",
        ),
    ],
    ids=["not-json", "no-message", "no-subscription", "no-message-id", "bad-data"],
)
def test_hook_malformed_envelope_is_refused_with_400_and_recorded(
    push, cloud, version, body, reason
):
    response = push(body)

    assert response.status_code == 400
    assert response.json()["fields"] == {}
    assert reason in response.json()["error"]
    [event] = audits("hook.clouddeploy.refused")
    assert set(event.payload_record.data) == {"reason", "status"}
    assert event.payload_record.data["status"] == 400
    assert reason in event.payload_record.data["reason"]
    assert not PubSubMessage.objects.exists()
    assert cloud.requests == []


@pytest.mark.django_db
def test_hook_accepts_a_message_carrying_data_and_attributes(push, deploy):
    rollout = deploy()
    envelope = json.loads(required(rollout, message_id="m-data"))
    envelope["message"]["data"] = base64.b64encode(b'{"note": "ignored"}').decode()

    response = push(json.dumps(envelope).encode())

    assert response.json()["outcome"] == PushOutcome.REVIEW_OPENED


@pytest.mark.django_db
def test_hook_answers_only_post(client, google):
    response = client.get(HOOK)

    assert response.status_code == 405
    assert not AuditEvent.objects.filter(action__startswith="hook.").exists()


# --- the same message delivered twice at once (PostgreSQL) ----------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_hook_same_message_delivered_twice_at_once_opens_one_review(cloud, deploy):
    import importlib
    import threading

    from django.apps import apps
    from django.db import connection

    from governance.reviews.clouddeploy_intake import clouddeploy_push_receive
    from portal.pubsub import pubsub_push_envelope_parse
    from worker.celery import app

    # Transactional tests start from emptied tables: put the default policies back.
    importlib.import_module("governance.reviews.migrations.0002_default_policies").create_defaults(
        apps, None
    )
    message = pubsub_push_envelope_parse(required(deploy(), message_id="m-twice"))
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def deliver(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = clouddeploy_push_receive(message=message)
        except Exception as error:  # the test inspects what each thread got
            results[index] = error
        finally:
            connection.close()

    # Work queued on commit (notifications) runs in-process instead of on a broker.
    app.conf.task_always_eager = True
    try:
        threads = [threading.Thread(target=deliver, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        app.conf.task_always_eager = False

    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(r.duplicate for r in results) == [False, True]
    assert Review.objects.count() == 1
    assert PubSubMessage.objects.get().review == Review.objects.get()
    assert AuditEvent.objects.filter(action="review.opened").count() == 1


# --- a flood of refused pushes ------------------------------------------------------------


@pytest.mark.django_db
def test_hook_flood_of_bad_pushes_is_counted_not_written_row_by_row(
    client, google, deploy, cloud, settings
):
    """500 unauthenticated pushes from one address write two ledger rows (the first
    refusal and the first rate-limited one, each with its details), the counters add
    up to 500, the address gets 429 with Retry-After once over the limit, and Google's
    own push still opens its review and is audited as before."""
    from portal.security.models import RefusalWindow
    from portal.security.services import refusal_window_start

    settings.HOOK_REFUSAL_LIMIT = 20
    rollout = deploy()
    body = required(rollout, message_id="m-good")
    ledger_before = AuditEvent.objects.count()
    start = refusal_window_start(datetime.now(UTC)) + timedelta(seconds=5)

    with time_machine.travel(start, tick=False):
        answers = [
            client.post(
                HOOK,
                data=body,
                content_type="application/json",
                HTTP_AUTHORIZATION="Bearer forged",
                REMOTE_ADDR="203.0.113.9",
            )
            for _ in range(500)
        ]
        ledger_after_flood = AuditEvent.objects.count()
        good = client.post(
            HOOK,
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=google.authorization(),
            REMOTE_ADDR="192.0.2.10",
        )

    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * 20 + [429] * 480
    assert ledger_after_flood - ledger_before == 2
    limited = answers[-1]
    assert limited.json() == {
        "error": "Too many refused requests; try again later.",
        "fields": {},
    }
    assert limited["Retry-After"] == "55"
    refused = audits("hook.clouddeploy.refused")
    rate_limited = audits("hook.clouddeploy.rate_limited")
    assert len(refused) == len(rate_limited) == 1
    assert refused[0].payload_record.data["status"] == 401
    assert "token refused" in refused[0].payload_record.data["reason"]
    assert refused[0].payload_record.client_ip == "203.0.113.9"
    assert rate_limited[0].payload_record.data["status"] == 429
    counts = dict(
        RefusalWindow.objects.filter(source="ip:203.0.113.9").values_list("kind", "count")
    )
    assert counts == {"hook.clouddeploy.refused": 20, "hook.clouddeploy.rate_limited": 480}
    assert RefusalWindow.objects.get(kind="hook.clouddeploy.refused").event == refused[0]

    assert good.status_code == 200
    assert good.json()["outcome"] == PushOutcome.REVIEW_OPENED
    assert Review.objects.count() == 1
    assert len(audits("hook.clouddeploy.received")) == 1


@pytest.mark.django_db
def test_hook_rate_limit_lifts_when_the_minute_is_over(client, settings):
    """The 429 lasts until the end of the minute the limit was reached in."""
    settings.HOOK_REFUSAL_LIMIT = 2
    start = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)

    def bad_push():
        return client.post(HOOK, data=b"{}", content_type="application/json").status_code

    with time_machine.travel(start, tick=False):
        assert [bad_push() for _ in range(3)] == [401, 401, 429]
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        assert bad_push() == 401

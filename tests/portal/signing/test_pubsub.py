"""Pub/Sub push verification, with tokens signed by keys the tests make and certificates
served from a local server the way Google serves them."""

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import rsa

from portal.pubsub import (
    PushEnvelopeInvalid,
    PushMessage,
    PushRejected,
    pubsub_certs_cache_clear,
    pubsub_push_envelope_parse,
    pubsub_push_verify,
)
from tests.fakes.clouddeploy_server import FakeGoogleOidc, approvals_push_body

AUDIENCE = "https://governance.zeromargin.example/hooks/clouddeploy"
SERVICE_ACCOUNT = "clouddeploy-push@zm-ml-prod.iam.gserviceaccount.com"
ROLLOUT = (
    "projects/zm-ml-prod/locations/europe-west1/deliveryPipelines/recommender"
    "/releases/rel-42/rollouts/rel-42-to-production-0001"
)


@pytest.fixture(autouse=True)
def _fresh_certs_cache():
    # Ports are reused between tests: a cached certificate must not leak into the next.
    pubsub_certs_cache_clear()
    yield
    pubsub_certs_cache_clear()


@pytest.fixture(params=["x509", "jwk"])
def google(request):
    """Both formats google-auth accepts from a certs URL."""
    with FakeGoogleOidc(
        audience=AUDIENCE, service_account=SERVICE_ACCOUNT, certs_format=request.param
    ) as fake:
        yield fake


def verify(google: FakeGoogleOidc, authorization: str | None, **overrides: str) -> dict:
    arguments = {
        "audience": AUDIENCE,
        "service_account_email": SERVICE_ACCOUNT,
        "certs_url": google.certs_url,
        **overrides,
    }
    return pubsub_push_verify(authorization, **arguments)


def test_pubsub_push_verify_accepts_googles_token_for_our_service_account(google):
    claims = verify(google, google.authorization())

    assert claims["email"] == SERVICE_ACCOUNT
    assert claims["aud"] == AUDIENCE
    assert claims["iss"] == "https://accounts.google.com"
    assert google.certs_requests == 1


def test_pubsub_push_verify_accepts_the_bare_issuer_spelling(google):
    claims = verify(google, google.authorization(iss="accounts.google.com"))

    assert claims["iss"] == "accounts.google.com"


def test_pubsub_push_verify_uses_the_certs_url_setting_by_default(google, settings):
    settings.GOOGLE_OIDC_CERTS_URL = google.certs_url

    claims = pubsub_push_verify(
        google.authorization(), audience=AUDIENCE, service_account_email=SERVICE_ACCOUNT
    )

    assert claims["email"] == SERVICE_ACCOUNT
    assert google.certs_requests == 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "https://elsewhere.example/hooks/clouddeploy"}, r"(?i)audience"),
        ({"email": "intruder@zm-ml-prod.iam.gserviceaccount.com"}, "another service account"),
        ({"email": None}, "another service account"),
        ({"email_verified": False}, "not verified"),
        ({"email_verified": "true"}, "not verified"),
        ({"email_verified": None}, "not verified"),
        ({"iss": "https://evil.example"}, "not issued by Google"),
    ],
)
def test_pubsub_push_verify_refuses_the_wrong_claims(google, overrides, reason):
    with pytest.raises(PushRejected, match=reason):
        verify(google, google.authorization(**overrides))


def test_pubsub_push_verify_refuses_an_expired_token(google):
    issued = datetime.now(UTC)
    token = google.token()

    with (
        time_machine.travel(issued + timedelta(hours=1, minutes=1), tick=False),
        pytest.raises(PushRejected, match=r"(?i)expired|too late"),
    ):
        verify(google, f"Bearer {token}")


def test_pubsub_push_verify_refuses_a_token_without_expiry(google):
    with pytest.raises(PushRejected):
        verify(google, google.authorization(exp=None))


def test_pubsub_push_verify_refuses_a_signature_from_another_key(google):
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(PushRejected, match="token refused"):
        verify(google, f"Bearer {google.token(signing_key=impostor)}")


def test_pubsub_push_verify_refuses_an_edited_token(google):
    header, payload, signature = google.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = jwt.utils.base64url_encode(
        json.dumps({**claims, "email": "intruder@example.com"}).encode()
    ).decode()

    with pytest.raises(PushRejected, match="token refused"):
        verify(google, f"Bearer {header}.{forged}.{signature}")


def test_pubsub_push_verify_refuses_an_unsigned_token(google):
    unsigned = jwt.encode(google.claims(), None, algorithm="none", headers={"kid": google.kid})

    with pytest.raises(PushRejected, match="token refused"):
        verify(google, f"Bearer {unsigned}")


def test_pubsub_push_verify_refuses_an_unknown_key_id(google):
    with pytest.raises(PushRejected, match="token refused"):
        verify(google, f"Bearer {google.token(kid='retired-key')}")


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "eyJhbGciOi"]
)
def test_pubsub_push_verify_refuses_a_missing_bearer_token(google, authorization):
    with pytest.raises(PushRejected, match="no bearer token"):
        verify(google, authorization)

    assert google.certs_requests == 0


def test_pubsub_push_verify_refuses_garbage_after_bearer(google):
    with pytest.raises(PushRejected, match="token refused"):
        verify(google, "Bearer not.a.token")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"audience": ""}, "no push audience is configured"),
        ({"service_account_email": ""}, "no push service account is configured"),
    ],
)
def test_pubsub_push_verify_refuses_everything_when_not_configured(google, overrides, reason):
    with pytest.raises(PushRejected, match=reason):
        verify(google, google.authorization(), **overrides)


def test_pubsub_push_verify_refuses_when_the_certificates_cannot_be_fetched(google):
    google.certs_status = 503

    with pytest.raises(PushRejected, match="could not fetch Google's signing certificates"):
        verify(google, google.authorization())


def test_pubsub_push_verify_rejection_reason_never_contains_the_token(google):
    token = google.token(aud="https://elsewhere.example")

    with pytest.raises(PushRejected) as caught:
        verify(google, f"Bearer {token}")

    assert token not in caught.value.reason
    assert token.split(".")[1] not in caught.value.reason


def test_pubsub_push_verify_caches_certificates_for_their_max_age():
    with FakeGoogleOidc(audience=AUDIENCE, service_account=SERVICE_ACCOUNT, max_age=600) as google:
        verify(google, google.authorization())
        verify(google, google.authorization())
        assert google.certs_requests == 1

        with time_machine.travel(datetime.now(UTC) + timedelta(seconds=601)):
            verify(google, google.authorization())
        assert google.certs_requests == 2


def test_pubsub_push_verify_fetches_again_without_cache_control(google):
    verify(google, google.authorization())
    verify(google, google.authorization())

    assert google.certs_requests == 2


# --- the envelope ------------------------------------------------------------------------


def test_pubsub_push_envelope_parse_reads_a_cloud_deploy_approval_message():
    body = approvals_push_body(rollout=ROLLOUT, target_id="production", message_id="99")

    message = pubsub_push_envelope_parse(body)

    assert isinstance(message, PushMessage)
    assert message.message_id == "99"
    assert message.subscription == "projects/zm-ml-prod/subscriptions/portal-clouddeploy-approvals"
    assert message.attributes["Action"] == "Required"
    assert message.attributes["Rollout"] == ROLLOUT
    assert message.attributes["TargetId"] == "production"
    assert message.attributes["RolloutId"] == "rel-42-to-production-0001"
    assert message.data == b""
    assert message.publish_time.tzinfo is not None


def test_pubsub_push_envelope_parse_decodes_data_and_nanosecond_times():
    body = json.dumps(
        {
            "message": {
                "data": base64.b64encode(b'{"hello": "world"}').decode(),
                "message_id": "2070443601311540",
                "publish_time": "2025-06-02T10:00:00.123456789Z",
                "attributes": {"kind": "test"},
            },
            "subscription": "projects/p/subscriptions/s",
            "deliveryAttempt": 3,
        }
    ).encode()

    message = pubsub_push_envelope_parse(body)

    assert message.data == b'{"hello": "world"}'
    assert message.message_id == "2070443601311540"
    assert message.publish_time == datetime(2025, 6, 2, 10, 0, 0, 123456, tzinfo=UTC)
    assert message.delivery_attempt == 3


def _envelope(**message_changes: object) -> dict:
    message = {
        "messageId": "1",
        "publishTime": "2025-06-02T10:00:00Z",
        "attributes": {"Action": "Required"},
        "data": "",
    }
    message.update(message_changes)
    return {"message": {k: v for k, v in message.items() if v is not None}, "subscription": "s"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "no message object"),
        (json.dumps({"subscription": "s"}).encode(), "no message object"),
        (json.dumps({"message": _envelope()["message"]}).encode(), "subscription is missing"),
        (json.dumps(_envelope(messageId=None)).encode(), "messageId is missing"),
        (json.dumps(_envelope(messageId=7)).encode(), "messageId is missing"),
        (json.dumps(_envelope(publishTime=None)).encode(), "publishTime is missing"),
        (json.dumps(_envelope(publishTime="yesterday")).encode(), "not an RFC 3339 time"),
        (json.dumps(_envelope(publishTime="2025-06-02T10:00:00")).encode(), "no time zone"),
        (json.dumps(_envelope(attributes={"n": 1})).encode(), "attributes must map strings"),
        (json.dumps(_envelope(attributes=["Action"])).encode(), "attributes must map strings"),
        (json.dumps(_envelope(data="not base64!")).encode(), "not valid base64"),
        (json.dumps(_envelope(data=12)).encode(), "must be a base64 string"),
        (
            json.dumps({**_envelope(), "deliveryAttempt": "3"}).encode(),
            "deliveryAttempt must be an integer",
        ),
        # values the ledger's database would refuse, refused here with their path
        (json.dumps(_envelope(attributes={"Rollout": "r\x00"})).encode(), "attributes.Rollout"),
        (json.dumps({**_envelope(), "x": float("inf")}).encode(), "x: Must be a finite"),
        (b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
)
def test_pubsub_push_envelope_parse_refuses_malformed_envelopes(body, reason):
    with pytest.raises(PushEnvelopeInvalid, match=reason):
        pubsub_push_envelope_parse(body)

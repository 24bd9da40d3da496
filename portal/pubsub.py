"""Pub/Sub push requests: proving they come from our subscription, and reading them.

Google signs every push with an OIDC ID token in `Authorization: Bearer ...`, issued
for the audience the subscription names and for the service account it runs as. We
check the signature against Google's published certificates (google-auth), the
audience, the issuer, the service account's e-mail and that the e-mail is verified.
Anything less is refused with one exception type, PushRejected, whose reason is safe
to audit (it never contains the token).
"""

import base64
import binascii
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
import jwt
import requests
from django.conf import settings
from google.oauth2 import id_token

from portal.jsonvalues import json_value_problems

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
# Google's certificates rotate daily and overlap; a few seconds of skew between their
# clocks and ours should not turn a delivery away.
CLOCK_SKEW_SECONDS = 10
CERTS_FETCH_TIMEOUT_SECONDS = 10
# Honour Cache-Control max-age on the certificates, up to this long.
CERTS_CACHE_MAX_SECONDS = 3600


class PushRejected(Exception):
    """The push request is not proven to come from our Pub/Sub subscription."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PushEnvelopeInvalid(ValueError):
    """The push body is not a Pub/Sub push envelope."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PushMessage:
    """One Pub/Sub message as delivered by a push subscription."""

    message_id: str
    publish_time: datetime
    attributes: dict[str, str]
    data: bytes
    subscription: str
    delivery_attempt: int | None = None


class _CachedResponse(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, dict(headers), data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


def _max_age(headers: Mapping[str, str]) -> int:
    for directive in headers.get("Cache-Control", headers.get("cache-control", "")).split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.isdigit():
            return min(int(value), CERTS_CACHE_MAX_SECONDS)
    return 0


class _CertsRequest(google.auth.transport.Request):
    """google-auth's HTTP request, remembering successful GETs for their max-age.

    Each process keeps its own copy; nothing another pod needs lives here.
    """

    def __init__(self) -> None:
        self._session = requests.Session()
        self._transport = google.auth.transport.requests.Request(self._session)
        self._cache: dict[str, tuple[float, _CachedResponse]] = {}
        self._lock = threading.Lock()

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        if method != "GET":
            return self._transport(url, method=method, body=body, headers=headers, **kwargs)
        with self._lock:
            cached = self._cache.get(url)
        if cached and cached[0] > time.time():
            return cached[1]
        response = self._transport(
            url, method="GET", headers=headers, timeout=timeout or CERTS_FETCH_TIMEOUT_SECONDS
        )
        if response.status == 200:
            max_age = _max_age(response.headers)
            if max_age:
                kept = _CachedResponse(response.status, response.headers, response.data)
                with self._lock:
                    self._cache[url] = (time.time() + max_age, kept)
        return response

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


_certs_request = _CertsRequest()


def pubsub_certs_cache_clear() -> None:
    """Forget the cached Google certificates (after a key compromise, or between tests)."""
    _certs_request.forget()


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PushRejected("no bearer token in Authorization")
    return token.strip()


def pubsub_push_verify(
    authorization: str | None,
    *,
    audience: str,
    service_account_email: str,
    certs_url: str | None = None,
) -> dict[str, Any]:
    """The verified claims of the OIDC token in a push request's Authorization header.

    Raises PushRejected unless the token is signed by a key at `certs_url` (Google's,
    GOOGLE_OIDC_CERTS_URL, by default), is unexpired, was issued by Google for
    `audience`, and names `service_account_email` with `email_verified` true. An empty
    `audience` or `service_account_email` refuses everything. No side effects beyond
    fetching (and caching) the certificates.
    """
    if not audience:
        raise PushRejected("no push audience is configured")
    if not service_account_email:
        raise PushRejected("no push service account is configured")
    token = _bearer_token(authorization)
    try:
        claims = dict(
            id_token.verify_token(
                token,
                _certs_request,
                audience=audience,
                certs_url=certs_url or settings.GOOGLE_OIDC_CERTS_URL,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        )
    except google.auth.exceptions.TransportError as exc:
        raise PushRejected("could not fetch Google's signing certificates") from exc
    except (ValueError, google.auth.exceptions.GoogleAuthError, jwt.PyJWTError) as exc:
        # google-auth's messages name the failed check (audience, expiry, signature);
        # they never repeat the token.
        raise PushRejected(f"token refused: {exc}") from exc
    # google-auth checks exp only when present on one of its two code paths.
    if "exp" not in claims:
        raise PushRejected("token has no expiry")
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise PushRejected("token was not issued by Google")
    if str(claims.get("email", "")).lower() != service_account_email.lower():
        raise PushRejected("token is for another service account")
    if claims.get("email_verified") is not True:
        raise PushRejected("token's e-mail is not verified")
    return claims


def _publish_time_parse(value: object) -> datetime:
    if not isinstance(value, str):
        raise PushEnvelopeInvalid("message.publishTime is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PushEnvelopeInvalid("message.publishTime is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise PushEnvelopeInvalid("message.publishTime has no time zone")
    return parsed


def pubsub_push_envelope_parse(body: bytes) -> PushMessage:
    """The message inside a push request's JSON body; PushEnvelopeInvalid if malformed.

    Accepts both spellings Pub/Sub sends (messageId and message_id, publishTime and
    publish_time). A message may carry attributes only, in which case `data` is b"".
    """
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PushEnvelopeInvalid("body is not JSON") from exc
    except RecursionError:
        raise PushEnvelopeInvalid("body is nested too deeply") from None
    # The attributes are stored as they came: nothing the database would refuse.
    problems = json_value_problems(envelope)
    if problems:
        path, problem = next(iter(problems.items()))
        raise PushEnvelopeInvalid(f"{path}: {problem.rstrip('.')}")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise PushEnvelopeInvalid("body has no message object")
    message = envelope["message"]
    subscription = envelope.get("subscription")
    if not isinstance(subscription, str) or not subscription:
        raise PushEnvelopeInvalid("subscription is missing")

    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        raise PushEnvelopeInvalid("message.messageId is missing")
    publish_time = _publish_time_parse(message.get("publishTime", message.get("publish_time")))

    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in attributes.items()
    ):
        raise PushEnvelopeInvalid("message.attributes must map strings to strings")

    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise PushEnvelopeInvalid("message.data must be a base64 string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PushEnvelopeInvalid("message.data is not valid base64") from exc

    attempt = envelope.get("deliveryAttempt")
    if attempt is not None and (not isinstance(attempt, int) or isinstance(attempt, bool)):
        raise PushEnvelopeInvalid("deliveryAttempt must be an integer")
    return PushMessage(
        message_id=message_id,
        publish_time=publish_time,
        attributes=dict(attributes),
        data=data,
        subscription=subscription,
        delivery_attempt=attempt,
    )

"""A local stand-in for Secret Manager's `AccessSecretVersion`.

It answers the path google-cloud-secret-manager's REST transport GETs (the generated
`rest_base.py`: `/v1/{name=projects/*/secrets/*/versions/*}:access`, and its regional
binding `projects/*/locations/*/secrets/*/versions/*`) in Google's JSON
format: `{"name", "payload": {"data": <base64>, "dataCrc32c": "<int64 as a string>"}}`,
errors as `{"error": {"code", "message", "status"}}`.

Callers authenticate as a service account: `service_account_file()` writes a key file
for Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS), with which the
client library sends a self-signed JWT as its bearer token, as it does with any
service account key. A request whose bearer token is missing, or not signed by that
account's key, is refused 401 (UNAUTHENTICATED); `deny()` makes a secret answer 403
(PERMISSION_DENIED), as for a caller without roles/secretmanager.secretAccessor; a
version it does not hold answers 404 (NOT_FOUND). `latest` is the newest version.

    GET  /v1/projects/{p}/secrets/{s}/versions/{v}:access   AccessSecretVersion
    GET  /v1/projects/{p}/locations/{l}/secrets/{s}/versions/{v}:access
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from tests.fakes.json_http import Failure, JsonHttpFake, RecordedRequest, route_find

_ROUTES = (
    (
        "GET",
        re.compile(
            r"^/v1/projects/(?P<project>[^/]+)/(?P<location>locations/[^/]+/)?"
            r"secrets/(?P<secret>[^/]+)"
            r"/versions/(?P<version>[^/:]+):access$"
        ),
        "access",
    ),
)
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    503: "UNAVAILABLE",
}
ACCESS_PATH = r":access$"
CLIENT_EMAIL = "training-job@zm-ml.iam.gserviceaccount.com"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def crc32c(data: bytes) -> int:
    """CRC32C of `data` as Secret Manager reports it (an unsigned 32-bit int)."""
    checksum = google_crc32c.Checksum()
    checksum.update(data)
    return int(checksum.hexdigest(), 16)


@dataclass
class FakeSecretManagerServer(JsonHttpFake):
    """Secret versions in memory (`versions`: "projects/p/secrets/s" -> {number: (data,
    crc32c)}), the secrets it refuses to give (`denied`), and the service account whose
    signed tokens it accepts (`client_email`, `signing_key`)."""

    versions: dict[str, dict[int, tuple[bytes, int]]] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    client_email: str = CLIENT_EMAIL
    signing_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def add_secret_version(self, secret: str, data: bytes, *, crc: int | None = None) -> str:
        """Add a version to `secret` ("projects/p/secrets/s") holding `data`; `crc`
        overrides the CRC32C the server reports (a corrupted answer). Its full name."""
        with self._lock:
            held = self.versions.setdefault(secret, {})
            number = max(held, default=0) + 1
            held[number] = (data, crc32c(data) if crc is None else crc)
            return f"{secret}/versions/{number}"

    def deny(self, secret: str) -> None:
        """Every access to `secret`'s versions answers 403, as for a caller without
        roles/secretmanager.secretAccessor on it."""
        with self._lock:
            self.denied.add(secret)

    def fail(self, status: int, *, times: int | None = 1) -> None:
        """The next `times` accesses (None: until clear_failures()) get `status`."""
        with self._lock:
            self._failures.append(
                Failure(
                    method="GET",
                    path=re.compile(ACCESS_PATH),
                    status=status,
                    message="injected failure",
                    remaining=times,
                    status_name=_STATUS.get(status),
                )
            )

    def accesses(self) -> list[RecordedRequest]:
        return self.requests_to("GET", ACCESS_PATH)

    def service_account_file(self, folder: Path, *, signed_by_another_key: bool = False) -> Path:
        """Write a service account key file (for GOOGLE_APPLICATION_CREDENTIALS) of the
        account this server accepts; its path. `signed_by_another_key`: a key of the
        same name the server does not know (its tokens are refused)."""
        key = self.signing_key
        if signed_by_another_key:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = folder / "service_account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "zm-ml",
                    "private_key_id": "0" * 40,
                    "private_key": pem,
                    "client_email": self.client_email,
                    "client_id": "1" * 21,
                    "token_uri": "https://oauth2.googleapis.com/token",
                }
            )
        )
        return path

    def authenticated(self, request: RecordedRequest) -> bool:
        """Whether the request's bearer token is a JWT the accepted account signed."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return False
        public_pem = self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            claims = jwt.decode(token, certs=public_pem.decode(), verify=True)
        except (ValueError, auth_exceptions.GoogleAuthError):
            return False
        return claims.get("iss") == self.client_email

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        request = self._request_keep(method, raw_path, headers, raw_body)
        path = request.path
        with self._lock:
            action, params = route_find(_ROUTES, method, path)
            try:
                if not self.authenticated(request):
                    raise ApiError(
                        401,
                        "Request had invalid authentication credentials. Expected OAuth 2 "
                        "access token, login cookie or other valid authentication credential.",
                    )
                injected = self._injected_failure(method, path)
                if injected is not None:
                    raise ApiError(injected.status, injected.message)
                if not action:
                    raise ApiError(404, f"The requested URL {path} was not found.")
                return 200, self._access(**params)
            except ApiError as error:
                return error.status, {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "status": _STATUS.get(error.status, "UNKNOWN"),
                    }
                }

    def _access(
        self, *, project: str, secret: str, version: str, location: str | None = None
    ) -> dict[str, Any]:
        secret_name = f"projects/{project}/{location or ''}secrets/{secret}"
        if secret_name in self.denied:
            raise ApiError(
                403,
                f"Permission 'secretmanager.versions.access' denied for resource "
                f"'{secret_name}/versions/{version}' (or it may not exist).",
            )
        held = self.versions.get(secret_name, {})
        number = max(held, default=0) if version == "latest" else _number(version)
        if number not in held:
            raise ApiError(404, f"Secret Version [{secret_name}/versions/{version}] not found.")
        data, crc = held[number]
        return {
            "name": f"{secret_name}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc)},
        }


def _number(version: str) -> int:
    return int(version) if version.isdigit() else -1

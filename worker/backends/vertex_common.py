"""What the Vertex AI adapters share: endpoints, the error type, time conversion, and
the labels Vertex AI accepts (one cleaning for pipeline jobs and model uploads).

Imports no portal app: plain values in and out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as google_exceptions
from google.auth import exceptions as auth_exceptions

DEFAULT_TIMEOUT_SECONDS = 30.0

# google.rpc.Code names whose failure may pass if the same call is made again later.
RETRYABLE_STATUSES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "ABORTED", "UNKNOWN"}
)


# Vertex AI's rules for label keys and values (pipeline jobs, models, ...).
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
_LABEL_VALUE_INVALID = re.compile(r"[^a-z0-9_-]")
LABEL_VALUE_MAX = 63


def vertex_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """Labels in the form Vertex AI accepts: values lowered, other characters `_`,
    63 characters at most. A key that does not fit is the caller's bug: ValueError."""
    cleaned: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"label key {key!r} must match [a-z][a-z0-9_-]{{0,62}}")
        cleaned[key] = _LABEL_VALUE_INVALID.sub("_", str(value).lower())[:LABEL_VALUE_MAX]
    return cleaned


class VertexError(Exception):
    """A Vertex AI call failed; `reason` says why in Google's words.

    `status` is the google.rpc.Code name ("UNAVAILABLE", "NOT_FOUND", ...) or
    "CONNECTION" when no answer came; `http_status` the HTTP status when one came.
    """

    def __init__(
        self, reason: str, *, operation: str, status: str, http_status: int | None = None
    ) -> None:
        super().__init__(f"Vertex AI {operation} failed ({status}): {reason}")
        self.reason = reason
        self.operation = operation
        self.status = status
        self.http_status = http_status

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later (outage, quota, lost connection)."""
        return self.status in RETRYABLE_STATUSES or self.status == "CONNECTION"


def regional_endpoint(location: str) -> str:
    """Vertex AI serves each region from its own host."""
    return f"{location}-aiplatform.googleapis.com"


def client_options(location: str, api_endpoint: str | None) -> dict[str, str]:
    """Options for a GAPIC client; an `http://host:port` endpoint talks plain HTTP."""
    return {"api_endpoint": api_endpoint or regional_endpoint(location)}


# The REST transports raise api_core errors for answers, requests errors for lost
# connections and google-auth errors for missing or refused credentials.
CAUGHT_ERRORS = (
    google_exceptions.GoogleAPIError,
    auth_exceptions.GoogleAuthError,
    requests.exceptions.RequestException,
)


VertexErrorT = TypeVar("VertexErrorT", bound=VertexError)


def translate_error(
    error: Exception, *, operation: str, error_class: type[VertexErrorT]
) -> VertexErrorT:
    """Turn a Google client error into our own exception type, keeping the reason."""
    if isinstance(error, google_exceptions.GoogleAPICallError):
        http_status = error.code if isinstance(error.code, int) else None
        status, reason = status_and_reason(error)
        return error_class(reason, operation=operation, status=status, http_status=http_status)
    if isinstance(error, auth_exceptions.GoogleAuthError):
        return error_class(str(error), operation=operation, status="UNAUTHENTICATED")
    if isinstance(error, requests.exceptions.RequestException):
        return error_class(str(error), operation=operation, status="CONNECTION")
    return error_class(str(error), operation=operation, status="UNKNOWN")


def status_and_reason(error: google_exceptions.GoogleAPICallError) -> tuple[str, str]:
    """The google.rpc.Code name and Google's own message from an error answer.

    api_core picks the exception class from the HTTP status alone (a 409 is a plain
    Conflict whether the body says ALREADY_EXISTS or ABORTED), so read the body.
    """
    status = reason = ""
    response = getattr(error, "response", None)
    if response is not None and hasattr(response, "json"):
        try:
            body = response.json().get("error", {})
        except (ValueError, AttributeError):
            body = {}
        if isinstance(body, dict):
            status = str(body.get("status") or "")
            reason = str(body.get("message") or "")
    if not status:
        grpc_status = getattr(error, "grpc_status_code", None)
        status = grpc_status.name if grpc_status is not None else "UNKNOWN"
    return status, reason or error.message or str(error)


def timestamp(message: Any, field_name: str) -> datetime | None:
    """A Timestamp field of a proto-plus message as an aware UTC datetime, or None if unset."""
    raw = type(message).pb(message)
    if not raw.HasField(field_name):
        return None
    return getattr(raw, field_name).ToDatetime(tzinfo=UTC)

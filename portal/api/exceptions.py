"""Every API error is JSON: {"error": "...", "fields": {...}}."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from portal.security.middleware import refusal_note


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [str(item) for item in detail]
        return [_flatten(item) for item in detail]
    return str(detail)


_REFUSALS = (
    DjangoPermissionDenied,
    exceptions.PermissionDenied,
    exceptions.NotAuthenticated,
    exceptions.AuthenticationFailed,
)


def json_exception_handler(exc: Exception, context: dict) -> Response | None:
    request = context.get("request")
    if isinstance(exc, _REFUSALS) and request is not None:
        # Refused state-changing calls are security events: the refusal middleware
        # counts them, with this note saying which rule refused.
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else ""
        code = getattr(exc, "code", "") or (codes if isinstance(codes, str) else "")
        refusal_note(
            request, code=code or "permission_denied", reason=str(getattr(exc, "detail", exc))
        )
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = exceptions.ValidationError(fields)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = (
            _flatten(detail) if isinstance(detail, dict) else {"non_field_errors": _flatten(detail)}
        )
        response.data = {"error": "Invalid input.", "fields": fields}
    else:
        detail = getattr(exc, "detail", str(exc))
        extra = getattr(exc, "extra", None)
        response.data = {"error": str(detail), "fields": {}, **(extra or {})}
    return response


class Conflict(exceptions.APIException):
    """409: the request contradicts what is already recorded."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict with the current state."

    def __init__(self, detail: str, *, extra: dict | None = None) -> None:
        super().__init__(detail)
        self.extra = extra or {}


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"error": "Not found.", "fields": {}}, status=404)


def api_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"error": "Internal error; it has been logged. Retrying later may help.", "fields": {}},
        status=500,
    )


def api_database_unavailable(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"error": "The database is briefly unavailable; try again shortly.", "fields": {}},
        status=503,
    )

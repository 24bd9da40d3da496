"""Every answer under /api/ and /hooks/ that is an error is the API's JSON error shape
({"error": "...", "fields": {...}}), whatever produced it and whether DEBUG is on.

DRF's exception handler shapes what its views raise, and the project's handler404 and
handler500 shape the rest, but only with DEBUG off: with DEBUG on Django answers its
technical 404 and 500 pages (HTML), a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a
SuspiciousOperation answered 400 with an HTML page, and `require_POST` answers an empty
405. This middleware sits outside all of them:

- a request to an API path whose declared body is over DATA_UPLOAD_MAX_MEMORY_SIZE is
  answered 413 at once, before anything reads the body (Django's own check reads the
  same Content-Length header; multipart uploads are left to Django's upload handlers,
  which check field sizes themselves);
- any error answer (4xx, 5xx) on an API path that is not JSON is replaced by the
  error shape with the same status and headers that matter (Allow, Retry-After); a
  DRF answer that a YAML or HTML renderer drew (the schema, Swagger UI) keeps its
  message. A debug page's traceback is not lost: Django has logged it already.
"""

from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

API_PREFIXES = ("/api/", "/hooks/")
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
MESSAGES = {
    400: "Bad request.",
    404: "Not found.",
    500: "Internal error; it has been logged. Retrying later may help.",
}


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def api_error(status: int, message: str | None = None) -> JsonResponse:
    """The API's error shape for `status`, with Django's reason phrase by default."""
    text = message or MESSAGES.get(status) or f"{HTTPStatus(status).phrase}."
    return JsonResponse({"error": text, "fields": {}}, status=status)


def _declared_body_too_large(request: HttpRequest) -> bool:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None or request.content_type == "multipart/form-data":
        return False
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > limit


def _is_json(response: HttpResponse) -> bool:
    content_type = (response.get("Content-Type") or "").split(";")[0].strip()
    return content_type == "application/json" or content_type.endswith("+json")


class ApiJsonErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request):
            return self.get_response(request)
        if _declared_body_too_large(request):
            return api_error(
                413,
                f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            )
        response = self.get_response(request)
        if response.status_code < 400 or _is_json(response):
            return response
        data = getattr(response, "data", None)  # a DRF answer rendered as YAML or HTML
        if isinstance(data, dict) and "error" in data:
            shaped = JsonResponse(data, status=response.status_code)
        else:
            shaped = api_error(response.status_code)
        for header in KEPT_HEADERS:
            if header in response:
                shaped[header] = response[header]
        return shaped


NUL_MESSAGE = "A NUL character (%00) is not allowed in a URL."


class NulRefusalMiddleware:
    """Refuse a request whose path or query string holds a NUL character: 400, in the
    API's error shape (naming `path` or the query parameter) under /api/ and /hooks/.

    PostgreSQL text cannot hold NUL, so a path segment (`versions/<version>`) or a
    filter value reaching a query with one was a DataError, answered 500. Forms and
    serializers already refuse NUL in bodies; this covers what views read from the URL.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        field = _nul_field(request)
        if field is None:
            return self.get_response(request)
        if is_api_path(request):
            return JsonResponse(
                {"error": NUL_MESSAGE, "fields": {field: [NUL_MESSAGE]}}, status=400
            )
        return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")


def _nul_field(request: HttpRequest) -> str | None:
    """`path`, or the first query parameter whose name or value holds a NUL, or None."""
    if "\x00" in request.path:
        return "path"
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return name.replace("\x00", "") or "query"
    return None

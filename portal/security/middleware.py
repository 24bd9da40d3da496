"""Every refused request is a security event, recorded in one place.

A view, a permission decorator or a service refuses by raising PermissionDenied (or
DRF's refusals, or answering 401/403 itself); this middleware sees the answer and
counts it through `security_refusal_record`, so no view has to remember to. Reads are
refusals too (a token without `audit:read` probing the ledger, a person without a role
walking the admin pages, a wrong bearer token): every method is counted, not only the
state-changing ones. What refused and why reaches it as a note on the request:
`process_exception` takes it from a raised PermissionDenied (a service's refusal
carries its `code`), the API's exception handler and views that catch a refusal
themselves call `refusal_note`. A noted refusal is counted whatever the status it is
answered with (a 400 or 409 that a rule, not bad input, decided). A 403 that is an
answer to an authorised caller rather than a refusal of them (the deployment gate's "not
yet", which CI polls while the board decides) is marked `refusal_is_answer` by its view
and not counted.

Counting stays cheap under a flood: each (kind, source, window) is one row whose first
refusal is one audit event and whose later ones only increment a count; anonymous
storms are folded further (portal.security.services). A refusal a service has already
recorded in this request (`domain_refusal_record`) is not counted again here.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from portal.audit.actors import actor_for_request, client_ip_for_request
from portal.security.services import (
    refusal_source,
    refusals_recorded_in_context,
    security_refusal_record,
)

logger = logging.getLogger(__name__)

REFUSED_STATUSES = frozenset({401, 403})
ACTION = "security.access_refused"


def refusal_note(request: Any, *, code: str, reason: str) -> None:
    """Say why a request was refused, for the record the middleware writes. Takes a
    Django request or DRF's wrapper of one."""
    django_request = getattr(request, "_request", request)
    django_request.refusal = {"code": str(code)[:40], "reason": str(reason)[:300]}


def records_own_refusals(view: Callable) -> Callable:
    """Mark a view that counts its refusals itself (the push hooks), so they are not
    counted twice."""
    view.records_own_refusals = True  # type: ignore[attr-defined]
    return view


class RefusalRecordMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        recorded_before = refusals_recorded_in_context()
        response = self.get_response(request)
        refused = (
            response.status_code in REFUSED_STATUSES
            or (response.status_code >= 400 and getattr(request, "refusal", None) is not None)
        ) and not getattr(request, "refusal_is_answer", False)
        if (
            refused
            and not getattr(request, "refusals_recorded_by_view", False)
            and refusals_recorded_in_context() == recorded_before
        ):
            try:
                self._record(request, response.status_code)
            except DatabaseError:
                # The refusal stands even when it cannot be counted (the database
                # failing over between the check and the record); say so in the log.
                logger.exception("could not record a refused %s %s", request.method, request.path)
        return response

    def process_view(self, request: HttpRequest, view: Callable, args: Any, kwargs: Any) -> None:
        if getattr(view, "records_own_refusals", False):
            request.refusals_recorded_by_view = True  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, PermissionDenied) and not hasattr(request, "refusal"):
            refusal_note(
                request,
                code=getattr(exception, "code", "") or "permission_denied",
                reason=str(exception) or "permission denied",
            )

    def _record(self, request: HttpRequest, status: int) -> None:
        note = getattr(request, "refusal", None) or {
            "code": "not_authenticated" if status == 401 else "forbidden",
            "reason": f"answered {status}",
        }
        actor = actor_for_request(request)
        client_ip = client_ip_for_request(request)
        match = getattr(request, "resolver_match", None)
        security_refusal_record(
            kind=f"access.{note['code']}",
            source=refusal_source(actor, client_ip),
            action=ACTION,
            actor=actor,
            details={
                **note,
                "method": request.method,
                "path": request.path[:200],
                "status": status,
            },
            object_type="route",
            object_id=(match.view_name if match and match.view_name else request.path)[:128],
            client_ip=client_ip,
        )

import sys

from django.contrib.auth.decorators import login_required
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader

from portal.accounts.choices import Role
from portal.api.exceptions import api_database_unavailable, api_not_found, api_server_error
from portal.audit.selectors import (
    audit_checkpoint_latest,
    audit_events_named,
    audit_events_recent,
)
from portal.changes.selectors import changes_pending_for, changes_pending_shown_to_board
from portal.ui.home import home_panels_for
from portal.ui.navigation import sections_for

# What a client is told to wait when the database is away: a Cloud SQL failover or a
# restart takes seconds.
DATABASE_RETRY_AFTER_SECONDS = 5


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """What waits for the signed-in person: the apps' panels (portal.ui.home), the
    governance changes for admins, the latest ledger events and checkpoint for those
    who read the trail."""
    user = request.user
    reads_audit = user.has_role(Role.AUDITOR, Role.PORTAL_ADMIN)
    recent = audit_events_named(audit_events_recent(limit=10)) if reads_audit else []
    return render(
        request,
        "ui/home.html",
        {
            "sections": sections_for(user),
            "panels": home_panels_for(user),
            "recent_events": recent,
            "checkpoint": audit_checkpoint_latest() if reads_audit else None,
            "has_roles": bool(user.roles),
            "pending_changes": changes_pending_for(user=user),
            "board_pending_changes": changes_pending_shown_to_board(user=user),
        },
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/hooks/")


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": "Forbidden.", "fields": {}}, status=403)
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return api_not_found(request, exception)
    return render(request, "404.html", status=404)


def _database_unavailable() -> bool:
    # Django calls the 500 handler inside its `except` block, so the exception that
    # got here is still the current one. OperationalError and InterfaceError are what
    # a database that is away (restarting, failing over) or a connection it closed
    # raise; the request did not get far enough to half-save anything.
    return isinstance(sys.exc_info()[1], OperationalError | InterfaceError)


def error_500(request: HttpRequest) -> HttpResponse:
    if _database_unavailable():
        if _is_api(request):
            response: HttpResponse = api_database_unavailable(request)
        else:
            response = HttpResponse(loader.get_template("503.html").render({}), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    if _is_api(request):
        return api_server_error(request)
    # No context processors that touch the database: the database may be why we're here.
    return HttpResponse(loader.get_template("500.html").render({}), status=500)

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.accounts.permissions import may_read_audit, user_passes
from portal.audit.filters import AuditEventFilter
from portal.audit.models import AuditEvent
from portal.audit.selectors import audit_events_all
from portal.audit.verification import audit_chain_verify


@user_passes(may_read_audit)
def event_list(request: HttpRequest) -> HttpResponse:
    filterset = AuditEventFilter(request.GET or None, queryset=audit_events_all())
    form = filterset.form
    events = filterset.qs if form.is_valid() else audit_events_all()
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/event_list.html",
        {"form": form, "page": page, "query": query.urlencode()},
        status=200 if form.is_valid() or not request.GET else 400,
    )


@user_passes(may_read_audit)
def event_detail(request: HttpRequest, sequence: int) -> HttpResponse:
    event = get_object_or_404(
        AuditEvent.objects.select_related("payload_record"), sequence=sequence
    )
    return render(request, "audit/event_detail.html", {"event": event})


@user_passes(may_read_audit)
@require_POST
def chain_verify(request: HttpRequest) -> HttpResponse:
    report = audit_chain_verify()
    (messages.success if report.ok else messages.error)(request, report.summary())
    return redirect("audit:event_list")

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.accounts.permissions import may_read_audit, user_passes
from portal.audit.forms import AuditFilterForm
from portal.audit.models import AuditEvent
from portal.audit.selectors import audit_events_list
from portal.audit.verification import audit_chain_verify


@user_passes(may_read_audit)
def event_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = Paginator(audit_events_list(**filters), 50).get_page(request.GET.get("page"))
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

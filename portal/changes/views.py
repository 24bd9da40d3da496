from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.accounts.permissions import may_manage_roles, may_read_audit, user_passes
from portal.audit.actors import client_ip_for_request
from portal.changes.forms import ChangeFilterForm, DecisionForm
from portal.changes.models import ChangeRequest
from portal.changes.registry import change_kind_label
from portal.changes.selectors import change_sides_named, changes_list
from portal.changes.services import change_approve, change_refusal_for, change_reject


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(m for ms in exc.message_dict.values() for m in ms)
    return "; ".join(exc.messages)


@user_passes(may_manage_roles)
def change_list(request: HttpRequest) -> HttpResponse:
    filters = ChangeFilterForm(request.GET or None)
    state = filters.cleaned_data["state"] if filters.is_valid() else ""
    page = Paginator(changes_list(state=state), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "changes/change_list.html",
        {"page": page, "filters": filters or ChangeFilterForm()},
    )


@user_passes(may_manage_roles)
def change_detail(request: HttpRequest, pk: int) -> HttpResponse:
    change = get_object_or_404(
        ChangeRequest.objects.select_related("proposed_by", "decided_by"), pk=pk
    )
    before, after = change_sides_named(change=change, names_visible=may_read_audit(request.user))
    return render(
        request,
        "changes/change_detail.html",
        {
            "change": change,
            "before": before,
            "after": after,
            "kind_label": change_kind_label(change.kind),
            "refusal": change_refusal_for(change=change, user=request.user),
            "form": DecisionForm(),
        },
    )


@user_passes(may_manage_roles)
@require_POST
def change_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    change = get_object_or_404(ChangeRequest, pk=pk)
    form = DecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        change_approve(
            change=change,
            approved_by=request.user,
            reason=reason,
            client_ip=client_ip_for_request(request),
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"Approved: {change.summary}. It applies now.")
    return redirect("changes:change_detail", pk=change.pk)


@user_passes(may_manage_roles)
@require_POST
def change_reject_view(request: HttpRequest, pk: int) -> HttpResponse:
    change = get_object_or_404(ChangeRequest, pk=pk)
    form = DecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        change_reject(
            change=change,
            rejected_by=request.user,
            actor=request.user.audit_actor(),
            reason=reason,
            client_ip=client_ip_for_request(request),
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"Rejected: {change.summary}. Nothing changed.")
    return redirect("changes:change_detail", pk=change.pk)

"""Monitoring pages: the fleet, one model's metrics and thresholds."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from governance.selectors.registry import model_get, model_targets, models_overview
from monitoring.forms import ThresholdForm
from monitoring.permissions import may_edit_thresholds, may_read_monitoring
from monitoring.selectors import thresholds_for
from monitoring.services import threshold_set
from portal.accounts.permissions import user_passes
from portal.audit.actors import client_ip_for_request


@user_passes(may_read_monitoring)
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "monitoring/overview.html", {"models": models_overview()})


def _model_page(request, registered, *, form_errors=None, status=200) -> HttpResponse:
    return render(
        request,
        "monitoring/model.html",
        {
            "model": registered,
            "targets": model_targets(model=registered),
            "thresholds": thresholds_for(model=registered),
            "may_edit": may_edit_thresholds(request.user),
            "form_errors": form_errors or {},
        },
        status=status,
    )


@user_passes(may_read_monitoring)
def model_dashboard(request: HttpRequest, model: str) -> HttpResponse:
    return _model_page(request, model_get(slug=model))


@require_POST
@user_passes(may_edit_thresholds)
def threshold_edit(request: HttpRequest, model: str, metric: str) -> HttpResponse:
    registered = model_get(slug=model)
    form = ThresholdForm(request.POST)
    errors: dict[str, list[str]] = {}
    if form.is_valid():
        try:
            threshold_set(
                model=registered,
                metric=metric,
                warning=form.cleaned_data["warning"],
                critical=form.cleaned_data["critical"],
                user=request.user,
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            errors = error.message_dict
    else:
        errors = {name: list(msgs) for name, msgs in form.errors.items()}
    if errors:
        messages.error(request, "Thresholds not saved: see the fields marked below.")
        return _model_page(request, registered, form_errors={metric: errors}, status=400)
    messages.success(request, "Thresholds saved.")
    return redirect("monitoring:model", model=registered.slug)

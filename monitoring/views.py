"""Monitoring pages: the fleet, one model's metrics and thresholds, incidents."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from governance.selectors.registry import model_get, model_targets
from monitoring.dashboards import DEFAULT_RANGE, RANGES, dashboard_build
from monitoring.filters import IncidentFilter
from monitoring.forms import IncidentCloseForm, ThresholdForm
from monitoring.incidents import incident_acknowledge, incident_close
from monitoring.permissions import (
    may_edit_thresholds,
    may_read_monitoring,
    may_respond_to_incidents,
)
from monitoring.rules import grafana_link
from monitoring.selectors import (
    fleet_status,
    incident_get,
    incidents_list,
    thresholds_for,
    track_comparison,
)
from monitoring.services import threshold_set
from portal.accounts.permissions import user_passes
from portal.audit.actors import client_ip_for_request


@user_passes(may_read_monitoring)
def overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "monitoring/overview.html",
        {
            "fleet": fleet_status(now=timezone.now()),
            "grafana_url": grafana_link(range_key="24h"),
        },
    )


def _model_page(request, registered, *, form_errors=None, status=200) -> HttpResponse:
    thresholds = thresholds_for(model=registered)
    now = timezone.now()
    dashboard = dashboard_build(
        model=registered,
        thresholds=thresholds,
        range_key=request.GET.get("range", DEFAULT_RANGE),
        now=now,
    )
    return render(
        request,
        "monitoring/model.html",
        {
            "model": registered,
            "targets": model_targets(model=registered),
            "thresholds": thresholds,
            "dashboard": dashboard,
            "tracks": track_comparison(model=registered, thresholds=thresholds, now=now),
            "grafana_url": grafana_link(range_key=dashboard.range_key),
            "window_minutes": settings.MONITORING_WINDOW_MINUTES,
            "ranges": list(RANGES),
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


@user_passes(may_read_monitoring)
def incident_list(request: HttpRequest) -> HttpResponse:
    filters = IncidentFilter(request.GET or None, queryset=incidents_list())
    incidents = filters.qs if filters.is_valid() else incidents_list()
    page = Paginator(incidents, 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "monitoring/incident_list.html",
        {"page": page, "filters": filters, "query": query.urlencode()},
    )


def _incident_page(request, incident, *, close_form=None, status=200) -> HttpResponse:
    return render(
        request,
        "monitoring/incident_detail.html",
        {
            "incident": incident,
            "may_respond": may_respond_to_incidents(request.user),
            "close_form": close_form or IncidentCloseForm(),
        },
        status=status,
    )


@user_passes(may_read_monitoring)
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _incident_page(request, incident_get(pk=pk))


@require_POST
@user_passes(may_respond_to_incidents)
def incident_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    incident = incident_get(pk=pk)
    try:
        incident_acknowledge(incident=incident, user=request.user, actor=request.user.audit_actor())
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Incident acknowledged.")
    return redirect("monitoring:incident_detail", pk=incident.pk)


@require_POST
@user_passes(may_respond_to_incidents)
def incident_close_view(request: HttpRequest, pk: int) -> HttpResponse:
    incident = incident_get(pk=pk)
    form = IncidentCloseForm(request.POST)
    if form.is_valid():
        try:
            incident_close(
                incident=incident, note=form.cleaned_data["note"], actor=request.user.audit_actor()
            )
        except ValidationError as error:
            for name, errors in error.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(request, "Incident closed.")
            return redirect("monitoring:incident_detail", pk=incident.pk)
    return _incident_page(request, incident, close_form=form, status=400)

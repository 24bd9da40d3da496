"""Webhook endpoints for portal admins: list with recent deliveries, create (the secret
shown once), edit, deactivate, send a test event, resend a failed delivery."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.accounts.permissions import user_passes
from portal.audit.actors import client_ip_for_request
from portal.notify.forms import WebhookEndpointCreateForm, WebhookEndpointForm
from portal.notify.models import WebhookDelivery, WebhookEndpoint
from portal.notify.permissions import may_manage_webhooks
from portal.notify.selectors import (
    webhook_delivery_get,
    webhook_endpoint_get,
    webhook_endpoints_list,
)
from portal.notify.services import (
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_deactivate,
    webhook_endpoint_test,
    webhook_endpoint_update,
)


def _form_errors(form: WebhookEndpointForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _endpoint_or_404(pk: int) -> WebhookEndpoint:
    endpoint = webhook_endpoint_get(pk=pk)
    if endpoint is None:
        raise Http404(f"No webhook endpoint {pk}.")
    return endpoint


def _list_response(
    request: HttpRequest, form: WebhookEndpointCreateForm, status: int = 200
) -> HttpResponse:
    page = Paginator(webhook_endpoints_list(), 20).get_page(request.GET.get("page"))
    return render(request, "notify/endpoint_list.html", {"page": page, "form": form}, status=status)


@user_passes(may_manage_webhooks)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    return _list_response(request, WebhookEndpointCreateForm())


@user_passes(may_manage_webhooks)
@require_POST
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = WebhookEndpointCreateForm(request.POST)
    if form.is_valid():
        try:
            created = webhook_endpoint_create(
                name=form.cleaned_data["name"],
                url=form.cleaned_data["url"],
                format=form.cleaned_data["format"],
                event_types=form.cleaned_data["event_types"],
                secret=form.cleaned_data["secret"],
                created_by=request.user,
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            # The only page that ever shows the secret.
            return render(request, "notify/endpoint_created.html", {"created": created})
    return _list_response(request, form, status=400)


@user_passes(may_manage_webhooks)
def endpoint_edit(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint_or_404(pk)
    if request.method == "POST":
        form = WebhookEndpointForm(request.POST)
        if form.is_valid():
            try:
                webhook_endpoint_update(
                    endpoint=endpoint,
                    actor=request.user.audit_actor(),
                    client_ip=client_ip_for_request(request),
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"Webhook {endpoint.name} saved.")
                return redirect("notify:endpoint_list")
        status = 400
    else:
        form = WebhookEndpointForm(
            initial={
                "name": endpoint.name,
                "url": endpoint.url,
                "format": endpoint.format,
                "event_types": endpoint.event_types,
            }
        )
        status = 200
    return render(
        request, "notify/endpoint_edit.html", {"endpoint": endpoint, "form": form}, status=status
    )


@user_passes(may_manage_webhooks)
@require_POST
def endpoint_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint_or_404(pk)
    try:
        webhook_endpoint_deactivate(
            endpoint=endpoint,
            actor=request.user.audit_actor(),
            client_ip=client_ip_for_request(request),
        )
        messages.success(request, f"Webhook {endpoint.name} deactivated: it receives nothing more.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("notify:endpoint_list")


@user_passes(may_manage_webhooks)
@require_POST
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint_or_404(pk)
    try:
        delivery = webhook_endpoint_test(
            endpoint=endpoint,
            actor=request.user.audit_actor(),
            client_ip=client_ip_for_request(request),
        )
        messages.success(
            request,
            f"Test event queued for {endpoint.name} (delivery {delivery.pk}); "
            "reload to see how it went.",
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("notify:endpoint_list")


@user_passes(may_manage_webhooks)
@require_POST
def delivery_resend(request: HttpRequest, pk: int) -> HttpResponse:
    delivery: WebhookDelivery | None = webhook_delivery_get(pk=pk)
    if delivery is None:
        raise Http404(f"No webhook delivery {pk}.")
    try:
        webhook_delivery_resend(
            delivery=delivery,
            actor=request.user.audit_actor(),
            client_ip=client_ip_for_request(request),
        )
        messages.success(request, f"Delivery {delivery.pk} queued again.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("notify:endpoint_list")

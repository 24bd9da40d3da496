"""Registry pages: the models, one model's versions, one version, two versions compared."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from governance.clients import registry_sync_enabled
from governance.filters import ModelFilter, VersionFilter
from governance.forms import ModelSettingsForm, VersionCompareForm
from governance.models import RegisteredModel
from governance.permissions import may_edit_card, may_read_registry
from governance.reviews.selectors import gate_attestations_last_expiry, open_review_counts_by_model
from governance.rollouts.selectors import rollouts_active_by_target
from governance.selectors.baselines import production_comparison
from governance.selectors.cards import card_diff, card_missing_sections, card_sections
from governance.selectors.data_subjects import version_subject_flags
from governance.selectors.registry import (
    headline_metrics,
    metrics_compare,
    metrics_trend,
    model_get,
    model_targets,
    models_overview,
    production_version,
    version_get,
    version_numbers,
    versions_for_model,
)
from governance.services.cards import AUDIT_OBJECT_TYPE
from governance.services.registry import model_update
from portal.accounts.permissions import may_manage_roles, may_read_audit, user_passes
from portal.audit.actors import client_ip_for_request
from portal.audit.selectors import (
    audit_actor_ref_name,
    audit_events_for_object,
    audit_events_named,
)

AUDIT_HISTORY_LIMIT = 50


@user_passes(may_read_registry)
def model_list(request: HttpRequest) -> HttpResponse:
    filters = ModelFilter(request.GET or None)
    kind = filters.form.cleaned_data.get("kind", "") if filters.is_valid() else ""
    page = Paginator(models_overview(kind=kind), 25).get_page(request.GET.get("page"))
    open_reviews = open_review_counts_by_model()
    for model in page:
        model.open_reviews = open_reviews.get(model.pk, 0)
    return render(
        request,
        "governance/model_list.html",
        {
            "page": page,
            "filters": filters,
            "query": f"kind={kind}" if kind else "",
            "registry_sync_enabled": registry_sync_enabled(),
        },
    )


@user_passes(may_read_registry)
def model_detail(request: HttpRequest, model: str) -> HttpResponse:
    return _model_page(request, model_get(slug=model))


def _model_page(
    request: HttpRequest,
    registered: RegisteredModel,
    *,
    settings_form: ModelSettingsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The model page; `settings_form` is a bound settings form to show with its errors."""
    filters = VersionFilter(request.GET or None, queryset=versions_for_model(model=registered))
    versions = filters.qs if filters.is_valid() else versions_for_model(model=registered)
    page = Paginator(versions, 20).get_page(request.GET.get("page"))
    for version in page:
        version.missing_sections = card_missing_sections(card=version.card)
        version.headline = headline_metrics(model=registered, version=version)
    all_versions = version_numbers(model=registered)
    compare_form = VersionCompareForm(
        model=registered,
        versions=all_versions,
        initial={
            "a": all_versions[1] if len(all_versions) > 1 else None,
            "b": all_versions[0] if all_versions else None,
        },
    )
    states = filters.form.cleaned_data.get("state") if filters.is_valid() else None
    return render(
        request,
        "governance/model_detail.html",
        {
            "model": registered,
            "targets": model_targets(model=registered),
            # What serves each target now: the stable version above, and an active
            # canary beside it with its share of the traffic.
            "rollouts": rollouts_active_by_target(model_id=registered.pk),
            "page": page,
            "filters": filters,
            "query": "&".join(f"state={s}" for s in states or []),
            "states": states or [],
            "trend": metrics_trend(model=registered, metric=request.GET.get("metric", "")),
            "compare_form": compare_form,
            "settings_form": settings_form
            or (
                ModelSettingsForm(
                    initial={
                        "owner": registered.owner_id,
                        "risk_tier": registered.risk_tier,
                        "description": registered.description,
                    }
                )
                if may_manage_roles(request.user)
                else None
            ),
        },
        status=status,
    )


@require_POST
@user_passes(may_manage_roles)
def model_settings(request: HttpRequest, model: str) -> HttpResponse:
    registered = model_get(slug=model)
    form = ModelSettingsForm(request.POST)
    if form.is_valid():
        try:
            model_update(
                model=registered,
                owner=form.cleaned_data["owner"],
                risk_tier=form.cleaned_data["risk_tier"],
                description=form.cleaned_data["description"],
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            messages.success(request, "Model settings saved.")
            return redirect("governance:model_detail", model=registered.slug)
    # Shown again with each field's error beside it, never a silent redirect.
    messages.error(request, "Nothing saved: correct the settings below.")
    return _model_page(request, registered, settings_form=form, status=400)


@user_passes(may_read_registry)
def version_detail(request: HttpRequest, model: str, version: str) -> HttpResponse:
    found = version_get(model_slug=model, version=version)
    card = found.card
    production = production_version(model=found.model)
    compared = production_comparison(version=found)
    baseline = compared.production if compared else None
    events = audit_events_for_object(object_type=AUDIT_OBJECT_TYPE, object_id=found.audit_id)
    return render(
        request,
        "governance/version_detail.html",
        {
            "model": found.model,
            "version": found,
            "card": card,
            "sections": card_sections(card=card),
            "missing": card_missing_sections(card=card),
            "production": production,
            "comparison": metrics_compare(
                version=found,
                baseline=baseline,
                baseline_metrics=compared.metrics if compared else None,
            ),
            "compared": compared,
            "baseline": baseline,
            "targets": sorted(a.target for a in found.assignments.all()),
            "can_edit": may_edit_card(request.user, found.model),
            "can_read_audit": may_read_audit(request.user),
            "events": audit_events_named(events[:AUDIT_HISTORY_LIMIT]),
            "registered_by_name": audit_actor_ref_name(found.registered_by)
            if found.registered_by
            else "",
            "revision_count": card.revisions.count(),
            "attestations_expire": [
                (target, expires_at, expires_at <= timezone.now())
                for target, expires_at in sorted(
                    gate_attestations_last_expiry(version=found).items()
                )
            ],
            "subject_flags": version_subject_flags(version=found),
        },
    )


@user_passes(may_read_registry)
def model_compare(request: HttpRequest, model: str) -> HttpResponse:
    registered = model_get(slug=model)
    all_versions = version_numbers(model=registered)
    form = VersionCompareForm(request.GET or None, model=registered, versions=all_versions)
    context: dict = {"model": registered, "form": form}
    if form.is_valid():
        # One direction on the whole page, whichever order the two were picked in:
        # the newer version against the older, the cards' changes from older to newer.
        older, newer = sorted(
            (form.cleaned_data["a"], form.cleaned_data["b"]), key=all_versions.index, reverse=True
        )
        old = version_get(model_slug=model, version=older)
        new = version_get(model_slug=model, version=newer)
        context.update(
            {
                "old": old,
                "new": new,
                "diffs": card_diff(old_card=old.card, new_card=new.card),
                "comparison": metrics_compare(version=new, baseline=old),
            }
        )
    return render(
        request, "governance/model_compare.html", context, status=400 if form.errors else 200
    )

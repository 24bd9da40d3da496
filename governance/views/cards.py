"""Card pages: edit or confirm a section, the revision history and its diffs, exports."""

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from governance.cards_schema import SECTION_BY_KEY, section_title
from governance.forms import CardSectionForm, RevisionCompareForm
from governance.models import CardSection, ModelVersion
from governance.permissions import may_edit_card, may_read_registry
from governance.reviews.selectors import reviews_going_stale_on_edit
from governance.selectors.card_exports import (
    CARD_PDF_EXPORT,
    card_export_governance,
    card_export_json,
    card_export_markdown,
    card_export_pdf,
    card_export_size,
    export_filename,
)
from governance.selectors.cards import card_revisions, card_revisions_diff
from governance.selectors.registry import version_get
from governance.services.cards import card_section_confirm, card_section_update
from portal.accounts.permissions import user_passes
from portal.audit.actors import client_ip_for_request
from portal.exports.models import ExportJob
from portal.exports.selectors import export_job_active_for
from portal.exports.services import export_job_request


def _version_url(version: ModelVersion) -> str:
    return reverse(
        "governance:version_detail",
        kwargs={"model": version.model.slug, "version": version.version},
    )


@user_passes(may_read_registry)
def card_section_edit(request: HttpRequest, model: str, version: str, key: str) -> HttpResponse:
    found = version_get(model_slug=model, version=version)
    if key not in SECTION_BY_KEY:
        raise Http404("No such card section.")
    if not may_edit_card(request.user, found.model):
        raise PermissionDenied("Only the model's owners and data science leads edit its card.")
    section = CardSection.objects.filter(card=found.card, key=key).first() or CardSection(
        card=found.card, key=key
    )
    if request.method == "POST":
        form = CardSectionForm(request.POST, key=key)
        if form.is_valid():
            try:
                card_section_update(
                    card=found.card,
                    key=key,
                    content=form.cleaned_data["content"],
                    data=form.structured_data(),
                    actor_user=request.user,
                    comment=form.cleaned_data["comment"],
                    client_ip=client_ip_for_request(request),
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"{section_title(key)} saved.")
                return redirect(f"{_version_url(found)}#section-{key}")
        status = 400
    else:
        form = CardSectionForm(initial=CardSectionForm.initial_for(section), key=key)
        status = 200
    return render(
        request,
        "governance/card_section_edit.html",
        {
            "model": found.model,
            "version": found,
            "section": section,
            "title": section_title(key),
            "form": form,
            "going_stale": reviews_going_stale_on_edit(version=found),
        },
        status=status,
    )


@user_passes(may_read_registry)
@require_POST
def card_section_confirm_view(
    request: HttpRequest, model: str, version: str, key: str
) -> HttpResponse:
    found = version_get(model_slug=model, version=version)
    if not may_edit_card(request.user, found.model):
        raise PermissionDenied("Only the model's owners and data science leads edit its card.")
    try:
        card_section_confirm(
            card=found.card,
            key=key,
            actor_user=request.user,
            client_ip=client_ip_for_request(request),
        )
        messages.success(request, f"{section_title(key)} confirmed for version {found.version}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(f"{_version_url(found)}#section-{key}")


@user_passes(may_read_registry)
def card_revision_list(request: HttpRequest, model: str, version: str) -> HttpResponse:
    found = version_get(model_slug=model, version=version)
    revisions = list(card_revisions(card=found.card))
    last = revisions[0].number if revisions else 0
    form = RevisionCompareForm(
        request.GET or None,
        card=found.card,
        last=last,
        initial={"old": max(last - 1, 1), "new": last},
    )
    diffs = None
    if form.is_valid():
        old, new = sorted((form.cleaned_data["old"], form.cleaned_data["new"]))
        diffs = card_revisions_diff(card=found.card, old_number=old, new_number=new)
    return render(
        request,
        "governance/card_revisions.html",
        {
            "model": found.model,
            "version": found,
            "revisions": revisions,
            "form": form,
            "diffs": diffs,
        },
        status=400 if form.errors else 200,
    )


@user_passes(may_read_registry)
def card_export(request: HttpRequest, model: str, version: str, fmt: str) -> HttpResponse:
    found = version_get(model_slug=model, version=version)
    card = found.card
    if fmt == "json":
        body = json.dumps(card_export_json(card=card), indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json")
    elif fmt == "governance.json":
        body = json.dumps(card_export_governance(card=card), indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json")
    elif fmt == "md":
        response = HttpResponse(card_export_markdown(card=card), content_type="text/markdown")
    elif fmt == "pdf":
        size = card_export_size(card=card)
        if not size.fits_a_request:
            return redirect("exports:job_detail", pk=_card_pdf_job(request, found).pk)
        response = HttpResponse(card_export_pdf(card=card), content_type="application/pdf")
    else:
        raise Http404("Unknown export format.")
    filename = export_filename(card=card, extension=fmt)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _card_pdf_job(request: HttpRequest, version: ModelVersion) -> ExportJob:
    """A card too big to print within the request is printed by a worker; asking again
    while that job is under way follows it rather than starting another."""
    params = {"card_id": version.card.pk}
    return export_job_active_for(
        kind=CARD_PDF_EXPORT, params=params, user=request.user
    ) or export_job_request(
        kind=CARD_PDF_EXPORT,
        params=params,
        title=f"Model card PDF: {version.model.slug} {version.version}",
        requested_by=request.user,
        client_ip=client_ip_for_request(request),
    )

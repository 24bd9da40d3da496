"""Pages of the data subjects app.

The public request forms (filing, the code, the status link) are the only pages of the
portal open without signing in; they answer the same way whether or not the address
is known. Everything else is for privacy officers (who act) and auditors and portal
admins (who read).
"""

import csv
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from datasubjects import forms, services
from datasubjects.certificates import erasure_certificate_pdf
from datasubjects.choices import (
    OPEN_STATES,
    ConsentPurpose,
    ConsentSource,
    RequestKind,
    RequestState,
)
from datasubjects.evidence import REQUEST_EVIDENCE_PACK
from datasubjects.models import DataSource, SourceTask, Suppression
from datasubjects.notices import (
    ART15_INFORMATION,
    PRIVACY_NOTICE_VERSION,
    profiling_explanations,
)
from datasubjects.permissions import may_handle_requests, may_manage_sources, may_read_requests
from datasubjects.pseudonyms import customer_key
from datasubjects.ratelimits import public_code_attempt_allowed, public_form_allowed
from datasubjects.selectors import (
    consent_records,
    consent_state_for,
    package_progress,
    request_by_public_id,
    request_is_overdue,
    request_tasks,
    requests_queue,
    sources_all,
    suppressions_page,
)
from datasubjects.services.consent import consent_record
from portal.accounts.permissions import user_passes
from portal.audit.actors import client_ip_for_request
from portal.exports.services import export_job_request

# --- public -------------------------------------------------------------------------------


def _too_many(request: HttpRequest) -> HttpResponse:
    return render(request, "datasubjects/public/too_many.html", status=429)


def public_request_new(request: HttpRequest) -> HttpResponse:
    form = forms.PublicRequestForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        client_ip = client_ip_for_request(request)
        if not public_form_allowed(
            subject_ref=services.subject_ref_for(data["email"]), client_ip=client_ip
        ):
            return _too_many(request)
        try:
            filed = services.request_file(
                kind=data["kind"],
                email=data["email"],
                details=data["details"],
                agent_name=data["agent_name"],
                agent_email=data["agent_email"] or "",
                agent_proof=data["agent_proof"],
                consent_purposes=data["consent_purposes"],
                client_ip=client_ip,
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return redirect("datasubjects:public_verify", public_id=filed.request.public_id)
    return render(request, "datasubjects/public/request_new.html", {"form": form})


def _unverified(public_id: str) -> object:
    dsr = request_by_public_id(public_id)
    if dsr is None:
        raise Http404("No such request.")
    return dsr


def public_verify(request: HttpRequest, public_id: str) -> HttpResponse:
    dsr = _unverified(public_id)
    if dsr.verified_at is not None:
        return render(request, "datasubjects/public/verified_already.html", {"dsr": dsr})
    form = forms.VerifyCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not public_code_attempt_allowed(
            subject_ref=dsr.subject_ref,
            client_ip=client_ip_for_request(request),
            attempts_per_code=services.CODE_MAX_ATTEMPTS,
        ):
            return _too_many(request)
        outcome = services.request_verify(
            request=dsr, code=form.cleaned_data["code"], client_ip=client_ip_for_request(request)
        )
        if outcome in (services.VerifyOutcome.VERIFIED, services.VerifyOutcome.ALREADY_VERIFIED):
            dsr.refresh_from_db()
            token = services.request_status_token(request=dsr)
            return redirect("datasubjects:public_status", token=token)
        if outcome == services.VerifyOutcome.NEW_CODE_SENT:
            form = forms.VerifyCodeForm()
            messages.warning(request, "That code no longer works: we have e-mailed you a new one.")
        else:
            dsr.refresh_from_db()
            left = services.CODE_MAX_ATTEMPTS - dsr.code_attempts
            form.add_error("code", f"That code is not right. {left} attempt(s) left.")
    return render(request, "datasubjects/public/verify.html", {"form": form, "dsr": dsr})


@require_POST
def public_code_resend(request: HttpRequest, public_id: str) -> HttpResponse:
    dsr = _unverified(public_id)
    if not public_form_allowed(
        subject_ref=dsr.subject_ref, client_ip=client_ip_for_request(request)
    ):
        return _too_many(request)
    services.request_code_resend(request=dsr, client_ip=client_ip_for_request(request))
    messages.info(request, "If the request is still waiting for its code, a new one is on its way.")
    return redirect("datasubjects:public_verify", public_id=public_id)


def public_status(request: HttpRequest, token: str) -> HttpResponse:
    try:
        public_id = signing.loads(
            token,
            salt=services.STATUS_LINK_SALT,
            max_age=settings.DSAR_STATUS_LINK_DAYS * 86400,
        )
    except signing.SignatureExpired:
        return render(request, "datasubjects/public/link_expired.html", status=410)
    except signing.BadSignature as error:
        raise Http404("No such request.") from error
    dsr = _unverified(public_id)
    package_url = ""
    if dsr.package_file and dsr.state == RequestState.COMPLETED:
        package_url = services.package_link_url(request=dsr)
    return render(
        request, "datasubjects/public/status.html", {"dsr": dsr, "package_url": package_url}
    )


def _package_response(dsr: object) -> FileResponse:
    path = Path(settings.DSAR_FILES_DIR) / dsr.package_file
    if not dsr.package_file or not path.is_file():
        raise Http404("No package has been made for this request.")
    response = FileResponse(
        path.open("rb"), as_attachment=True, filename=f"personal-data-{dsr.public_id}.zip"
    )
    response["Cache-Control"] = "no-store"
    return response


def public_package(request: HttpRequest, token: str) -> HttpResponse:
    """The requester's download: only through the e-mailed (or status page) link,
    only while it is fresh, only once the privacy officer completed the request."""
    try:
        dsr = services.package_request_for_token(token)
    except signing.SignatureExpired:
        return render(
            request,
            "datasubjects/public/link_expired.html",
            {"download": True, "hours": settings.DSAR_PACKAGE_LINK_HOURS},
            status=410,
        )
    except signing.BadSignature as error:
        raise Http404("No such package.") from error
    if dsr is None or dsr.verified_at is None or dsr.state != RequestState.COMPLETED:
        raise Http404("No such package.")
    return _package_response(dsr)


def public_privacy_notice(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "datasubjects/public/privacy_notice.html",
        {
            "info": ART15_INFORMATION,
            "profiling": profiling_explanations(),
            "notice_version": PRIVACY_NOTICE_VERSION,
        },
    )


# --- privacy officers, auditors -----------------------------------------------------------


@user_passes(may_read_requests)
def request_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    if state not in RequestState.values:
        state = ""
    page = Paginator(requests_queue(state=state), 50).get_page(request.GET.get("page"))
    for dsr in page:
        dsr.is_overdue = request_is_overdue(dsr)
    return render(
        request,
        "datasubjects/request_list.html",
        {"page": page, "state": state, "states": RequestState.choices},
    )


def _request_or_404(public_id: str) -> object:
    dsr = request_by_public_id(public_id)
    if dsr is None or dsr.verified_at is None:
        raise Http404("No such request.")
    return dsr


@user_passes(may_read_requests)
def request_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    dsr = _request_or_404(public_id)
    dsr.is_overdue = request_is_overdue(dsr)
    tasks = list(request_tasks(dsr))
    context = {
        "dsr": dsr,
        "tasks": tasks,
        "package": package_progress(request=dsr, tasks=tasks),
        "suppressions": list(dsr.suppressions.order_by("created_at")),
        "may_handle": may_handle_requests(request.user),
        "open_states": OPEN_STATES,
    }
    if context["may_handle"]:
        context |= {
            "assign_form": forms.AssignForm(),
            "state_form": forms.StateForm(),
            "extend_form": forms.ExtendForm(),
            "refuse_form": forms.RefuseForm(),
            "duplicate_form": forms.DuplicateForm(),
            "manual_form": forms.ManualTaskForm(),
        }
    return render(request, "datasubjects/request_detail.html", context)


def _act(request: HttpRequest, public_id: str, form_class: type, act: object) -> HttpResponse:
    dsr = _request_or_404(public_id)
    form = form_class(request.POST)
    if form.is_valid():
        try:
            act(dsr, form.cleaned_data)
        except services.RequestRefused as refused:
            messages.error(request, refused.message)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Done.")
    else:
        messages.error(request, " ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("datasubjects:request_detail", public_id=public_id)


@require_POST
@user_passes(may_handle_requests)
def request_assign(request: HttpRequest, public_id: str) -> HttpResponse:
    return _act(
        request,
        public_id,
        forms.AssignForm,
        lambda dsr, data: services.request_assign(
            request=dsr, assignee=data["assignee"], user=request.user
        ),
    )


@require_POST
@user_passes(may_handle_requests)
def request_state(request: HttpRequest, public_id: str) -> HttpResponse:
    return _act(
        request,
        public_id,
        forms.StateForm,
        lambda dsr, data: services.request_set_state(
            request=dsr, state=data["state"], note=data["note"], user=request.user
        ),
    )


@require_POST
@user_passes(may_handle_requests)
def request_extend(request: HttpRequest, public_id: str) -> HttpResponse:
    return _act(
        request,
        public_id,
        forms.ExtendForm,
        lambda dsr, data: services.request_extend(
            request=dsr, months=data["months"], reason=data["reason"], user=request.user
        ),
    )


@require_POST
@user_passes(may_handle_requests)
def request_refuse(request: HttpRequest, public_id: str) -> HttpResponse:
    return _act(
        request,
        public_id,
        forms.RefuseForm,
        lambda dsr, data: services.request_refuse(
            request=dsr, reason=data["reason"], user=request.user
        ),
    )


@require_POST
@user_passes(may_handle_requests)
def request_duplicate(request: HttpRequest, public_id: str) -> HttpResponse:
    def close(dsr: object, data: dict) -> None:
        original = request_by_public_id(str(data["original"]))
        if original is None:
            raise ValidationError({"original": "No request has that id."})
        services.request_close_duplicate(request=dsr, original=original, user=request.user)

    return _act(request, public_id, forms.DuplicateForm, close)


@require_POST
@user_passes(may_handle_requests)
def task_record_manual(request: HttpRequest, public_id: str, task_id: int) -> HttpResponse:
    dsr = _request_or_404(public_id)
    task = SourceTask.objects.filter(pk=task_id, request=dsr).select_related("source").first()
    if task is None:
        raise Http404("No such task.")
    form = forms.ManualTaskForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.source_task_record_manual(
                task=task,
                note=form.cleaned_data["note"],
                attachment=form.cleaned_data["attachment"],
                user=request.user,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Recorded the work in {task.source.name}.")
    else:
        messages.error(request, " ".join(" ".join(v) for v in form.errors.values()))
    return redirect("datasubjects:request_detail", public_id=public_id)


# --- data sources -------------------------------------------------------------------------


@user_passes(may_read_requests)
def source_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "datasubjects/source_list.html",
        {
            "sources": sources_all(),
            "may_manage": may_manage_sources(request.user),
            "may_check": may_manage_sources(request.user) or may_handle_requests(request.user),
        },
    )


@user_passes(may_manage_sources)
def source_edit(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    source = get_object_or_404(DataSource, slug=slug) if slug else None
    initial = (
        {
            "slug": source.slug,
            "name": source.name,
            "kind": source.kind,
            "lookup_key": source.lookup_key,
            "config": source.config,
            "active": source.active,
        }
        if source
        else None
    )
    form = forms.DataSourceForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.data_source_save(user=request.user, **form.cleaned_data)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Saved the data source {saved.name}.")
            return redirect("datasubjects:source_list")
    return render(request, "datasubjects/source_form.html", {"form": form, "source": source})


@require_POST
@user_passes(lambda user: may_manage_sources(user) or may_handle_requests(user))
def source_check(request: HttpRequest, slug: str) -> HttpResponse:
    source = get_object_or_404(DataSource, slug=slug)
    check = services.data_source_check(source=source)
    if check.ok:
        messages.success(request, f"{source.name}: {check.message}")
    else:
        messages.error(request, f"{source.name}: {check.message}")
    return redirect("datasubjects:source_list")


@user_passes(may_read_requests)
def request_package(request: HttpRequest, public_id: str) -> HttpResponse:
    return _package_response(_request_or_404(public_id))


@user_passes(may_read_requests)
@require_POST
def request_evidence_pack(request: HttpRequest, public_id: str) -> HttpResponse:
    """Ask for the request's evidence pack as PDF: a worker prints it as an export job."""
    dsr = _request_or_404(public_id)
    job = export_job_request(
        kind=REQUEST_EVIDENCE_PACK,
        params={"public_id": str(dsr.public_id)},
        title=f"Evidence pack of request {dsr.public_id}",
        requested_by=request.user,
        client_ip=client_ip_for_request(request),
    )
    return redirect("exports:job_detail", pk=job.pk)


@user_passes(may_read_requests)
def request_certificate(request: HttpRequest, public_id: str) -> HttpResponse:
    dsr = _request_or_404(public_id)
    if dsr.kind != RequestKind.ERASURE:
        raise Http404("Only erasure requests have a certificate.")
    response = HttpResponse(erasure_certificate_pdf(request=dsr), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="erasure-{dsr.public_id}.pdf"'
    return response


# --- consent ledger and suppression list ----------------------------------------------------

CONSENT_PAGE_SIZE = 50


def _consent_filtered(request: HttpRequest) -> tuple[forms.ConsentFilterForm, object]:
    form = forms.ConsentFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    person = (data.get("person") or "").strip()
    subject_ref = customer = ""
    if person:
        # An address finds the records under it; anything else is a customer id.
        if "@" in person:
            subject_ref = services.subject_ref_for(person)
        else:
            customer = customer_key(person)
    state = data.get("state") or ""
    records = consent_records(
        subject_ref=subject_ref,
        customer_key=customer,
        purpose=data.get("purpose") or "",
        given={"given": True, "withdrawn": False}.get(state),
        source=data.get("source") or "",
    )
    return form, records


@user_passes(may_read_requests)
def consent_list(request: HttpRequest) -> HttpResponse:
    """The consent ledger: search by customer, filter, page; a person's history is the
    list searched for them, with their current state per purpose above it."""
    form, records = _consent_filtered(request)
    page = Paginator(records, CONSENT_PAGE_SIZE).get_page(request.GET.get("page"))
    current = {}
    if form.is_valid() and form.cleaned_data["person"]:
        refs = {record.subject_ref for record in page}
        if len(refs) == 1:
            current = consent_state_for(subject_ref=refs.pop())
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "datasubjects/consent_list.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "current": [(label, current.get(value)) for value, label in ConsentPurpose.choices]
            if current
            else [],
            "may_handle": may_handle_requests(request.user),
            "record_form": forms.ConsentRecordForm(),
        },
    )


@user_passes(may_read_requests)
def consent_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered ledger as CSV, streamed (the ledger grows without bound)."""
    _form, records = _consent_filtered(request)

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    header = [
        "recorded_at",
        "subject_ref",
        "customer_key",
        "purpose",
        "state",
        "source",
        "notice_version",
        "request",
    ]

    def rows() -> Iterator[str]:
        yield writer.writerow(header)
        for record in records.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    record.recorded_at.isoformat(),
                    record.subject_ref,
                    record.customer_key,
                    record.purpose,
                    "given" if record.given else "withdrawn",
                    record.source,
                    record.notice_version,
                    record.request.public_id if record.request else "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="consent-records.csv"'
    return response


@require_POST
@user_passes(may_handle_requests)
def consent_record_new(request: HttpRequest) -> HttpResponse:
    form = forms.ConsentRecordForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            consent_record(
                email=data["email"],
                customer_id=data["customer_id"],
                purposes=data["purposes"],
                given=data["given"],
                source=ConsentSource.PRIVACY_OFFICER,
                actor=request.user.audit_actor(),
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Recorded in the consent ledger.")
    else:
        messages.error(request, " ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("datasubjects:consent_list")


@user_passes(may_read_requests)
def suppression_list(request: HttpRequest) -> HttpResponse:
    """The suppression list: hashes, reasons and requests only (it outlives erasure)."""
    lifted = request.GET.get("lifted") == "1"
    page = Paginator(suppressions_page(lifted=lifted), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "datasubjects/suppression_list.html",
        {
            "page": page,
            "lifted": lifted,
            "query": "lifted=1" if lifted else "",
            "may_handle": may_handle_requests(request.user),
            "lift_form": forms.SuppressionLiftForm(),
        },
    )


@require_POST
@user_passes(may_handle_requests)
def suppression_lift(request: HttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(Suppression, pk=pk)
    form = forms.SuppressionLiftForm(request.POST)
    if form.is_valid():
        try:
            services.suppression_lift(
                suppression=entry, reason=form.cleaned_data["reason"], user=request.user
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Lifted: the person may be profiled again.")
    else:
        messages.error(request, " ".join(" ".join(v) for v in form.errors.values()))
    return redirect("datasubjects:suppression_list")

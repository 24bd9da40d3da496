"""Training run pages: the runs, one run with its steps (live while it runs), starting
and cancelling a run, the retraining schedules, and imports of the client's data into
the lake (the form, the list, one import with its progress and rejection report)."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from governance.models import RegisteredModel
from governance.training.choices import STEP_TITLES, RunTrigger
from governance.training.forms import (
    LakeImportForm,
    RunFilterForm,
    RunStartForm,
    ScheduleForm,
)
from governance.training.permissions import (
    may_import_data,
    may_manage_schedules,
    may_read_runs,
    may_start_any_run,
    may_start_run,
)
from governance.training.selectors import (
    lake_import_get,
    lake_imports_list,
    run_get,
    runs_list,
    schedule_get,
    schedules_list,
)
from governance.training.services import (
    CRONTAB_FIELDS,
    RunAlreadyActive,
    lake_import_start,
    run_cancel,
    run_start,
    schedule_update,
)
from portal.accounts.permissions import user_passes
from portal.audit.actors import client_ip_for_request
from portal.audit.selectors import audit_actor_ref_name

PAGE_SIZE = 25


def _startable_models(user: object) -> list[RegisteredModel]:
    return [m for m in RegisteredModel.objects.order_by("slug") if may_start_run(user, m)]


@user_passes(may_read_runs)
def run_list(request: HttpRequest) -> HttpResponse:
    models = list(RegisteredModel.objects.order_by("slug"))
    filters = RunFilterForm(request.GET or None, models=models)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    runs = runs_list(
        model=chosen.get("model", ""),
        state=chosen.get("state", ""),
        trigger=chosen.get("trigger", ""),
    )
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    startable = [m for m in models if may_start_run(request.user, m)]
    start_form = RunStartForm(models=startable) if startable else None
    return render(
        request,
        "training/run_list.html",
        {
            "page": page,
            "filters": filters,
            "query": urlencode([(k, v) for k, v in chosen.items() if v]),
            "start_form": start_form,
            "may_manage_schedules": may_manage_schedules(request.user),
            "may_import_data": may_import_data(request.user),
        },
    )


@user_passes(may_start_any_run)
def run_start_view(request: HttpRequest) -> HttpResponse:
    """GET: the form (the model page links here with ?model=); POST: start the run."""
    startable = _startable_models(request.user)
    if request.method != "POST":
        form = RunStartForm(initial={"model": request.GET.get("model")}, models=startable)
        return render(request, "training/run_start.html", {"form": form})
    form = RunStartForm(request.POST, models=RegisteredModel.objects.order_by("slug"))
    if form.is_valid():
        model = RegisteredModel.objects.get(slug=form.cleaned_data["model"])
        if not may_start_run(request.user, model):
            raise PermissionDenied("Only its owner, data science leads and admins retrain it.")
        try:
            run = run_start(
                model=model,
                trigger=RunTrigger.MANUAL,
                reason=form.cleaned_data["reason"],
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except RunAlreadyActive as refused:
            messages.error(request, " ".join(refused.messages))
            if refused.active is not None:
                return redirect("governance:run_detail", pk=refused.active.pk)
            return redirect("governance:run_list")
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(
                request,
                f"Run #{run.pk} of {model.slug} queued; it will register version "
                f"{run.planned_version} if it gets that far.",
            )
            return redirect("governance:run_detail", pk=run.pk)
    form.fields["model"].choices = [(m.slug, m.name) for m in startable]
    return render(request, "training/run_start.html", {"form": form}, status=400)


def _run_context(request: HttpRequest, pk: int) -> dict:
    run = run_get(pk=pk)
    return {
        "run": run,
        "steps": [(step, STEP_TITLES.get(step.name, step.name)) for step in run.steps.all()],
        "may_cancel": run.is_active and may_start_run(request.user, run.model),
        "requested_by_name": audit_actor_ref_name(run.requested_by) if run.requested_by else "",
    }


@user_passes(may_read_runs)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "training/run_detail.html", _run_context(request, pk))


@user_passes(may_read_runs)
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The steps and outcome, polled by htmx every two seconds while the run is active."""
    return render(request, "training/includes/run_progress.html", _run_context(request, pk))


@require_POST
@user_passes(may_start_any_run)
def run_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = run_get(pk=pk)
    if not may_start_run(request.user, run.model):
        raise PermissionDenied("Only its owner, data science leads and admins cancel its runs.")
    try:
        run_cancel(
            run=run, actor=request.user.audit_actor(), client_ip=client_ip_for_request(request)
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Run #{run.pk} cancelled.")
    return redirect("governance:run_detail", pk=run.pk)


@user_passes(may_manage_schedules)
def schedule_list(request: HttpRequest) -> HttpResponse:
    return render(request, "training/schedule_list.html", {"schedules": list(schedules_list())})


@user_passes(may_manage_schedules)
def schedule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    task = schedule_get(pk=pk)
    initial = {f: getattr(task.crontab, f, "*") for f in CRONTAB_FIELDS}
    form = ScheduleForm(request.POST or None, initial={**initial, "enabled": task.enabled})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            schedule_update(
                task=task,
                crontab={f: data[f] for f in CRONTAB_FIELDS},
                enabled=data["enabled"],
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, f"Schedule “{task.name}” saved.")
            return redirect("governance:schedule_list")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "training/schedule_edit.html", {"task": task, "form": form}, status=status
    )


@user_passes(may_import_data)
def import_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(lake_imports_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "training/import_list.html", {"page": page})


@user_passes(may_import_data)
def import_start_view(request: HttpRequest) -> HttpResponse:
    """GET: the form; POST: queue the import and go to its page."""
    if request.method != "POST":
        return render(request, "training/import_start.html", {"form": LakeImportForm()})
    form = LakeImportForm(request.POST)
    if form.is_valid():
        try:
            job = lake_import_start(
                sources=form.sources(),
                mapping=form.cleaned_data["mapping"],
                max_rejected=form.cleaned_data["max_rejected_percent"] / 100,
                actor=request.user.audit_actor(),
                client_ip=client_ip_for_request(request),
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                target = "max_rejected_percent" if field == "max_rejected" else field
                form.add_error(target if target in form.fields else None, problems)
        else:
            messages.success(request, f"Import #{job.pk} queued.")
            return redirect("governance:import_detail", pk=job.pk)
    return render(request, "training/import_start.html", {"form": form}, status=400)


def _import_context(pk: int) -> dict:
    job = lake_import_get(pk=pk)
    tables = (job.report or {}).get("tables", {})
    return {"job": job, "tables": tables}


@user_passes(may_import_data)
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    context = _import_context(pk)
    ref = context["job"].requested_by
    context["requested_by_name"] = audit_actor_ref_name(ref) if ref else ""
    return render(request, "training/import_detail.html", context)


@user_passes(may_import_data)
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress and outcome, polled by htmx every two seconds while it runs."""
    return render(request, "training/includes/import_progress.html", _import_context(pk))

"""Export job pages: progress (polled by htmx while the worker runs) and the download."""

from typing import Any

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.permissions import user_passes
from portal.exports.registry import export_kind_get
from portal.exports.selectors import export_job_get_for
from portal.exports.services import _storage


def may_use_exports(user: Any) -> bool:
    """Anyone with a role may open an export page; what the export contains decides
    whether they see this one (export_job_get_for)."""
    return bool(user.is_authenticated and user.roles)


def _context(request: HttpRequest, pk: int) -> dict[str, Any]:
    job = export_job_get_for(pk=pk, user=request.user)
    kind = export_kind_get(job.kind)
    return {"job": job, "kind": kind, "source_url": kind.source_url(job.params)}


@user_passes(may_use_exports)
def export_job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "exports/job_detail.html", _context(request, pk))


@user_passes(may_use_exports)
def export_job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """State, progress and log, polled by htmx every two seconds while the job runs."""
    return render(request, "exports/includes/job_progress.html", _context(request, pk))


@user_passes(may_use_exports)
def export_job_download(request: HttpRequest, pk: int) -> FileResponse:
    job = export_job_get_for(pk=pk, user=request.user)
    if not job.is_ready:
        raise Http404("This export is not ready, or its file has expired.")
    storage = _storage()
    if not storage.exists(job.file_name):
        raise Http404("This export's file is gone.")
    return FileResponse(
        storage.open(job.file_name, "rb"),
        as_attachment=True,
        filename=job.filename,
        content_type=job.content_type,
    )

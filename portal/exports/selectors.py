"""Reads of export jobs, with who may see them."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from portal.exports.choices import ACTIVE_EXPORT_STATES
from portal.exports.models import ExportJob
from portal.exports.registry import export_kind_get


def export_job_get_for(*, pk: int, user: Any) -> ExportJob:
    """The job, if this person may read what it contains (the kind decides: for a card,
    whoever may read the card); 404 when there is none, PermissionDenied otherwise."""
    job = ExportJob.objects.filter(pk=pk).select_related("requested_by").first()
    if job is None:
        raise Http404("No such export.")
    if not export_kind_get(job.kind).may_read(user, job.params):
        raise PermissionDenied("You may not read what this export contains.")
    return job


def export_job_active_for(*, kind: str, params: dict, user: Any) -> ExportJob | None:
    """This person's queued or running job for the same export, if any: asking twice
    while the first is under way follows the first instead of starting another."""
    return (
        ExportJob.objects.filter(
            kind=kind, params=params, requested_by=user, state__in=ACTIVE_EXPORT_STATES
        )
        .order_by("-created_at")
        .first()
    )

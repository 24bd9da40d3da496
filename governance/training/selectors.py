"""Reads of training runs and their schedules. Query counts do not depend on the
number of rows."""

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django_celery_beat.models import PeriodicTask

from governance.models import ModelVersion, RegisteredModel
from governance.selectors.registry import SEMVER_DESC
from governance.training.choices import ACTIVE_RUN_STATES, SCHEDULED_TASK
from governance.training.models import LakeImport, PipelineRun


def runs_list(*, model: str = "", state: str = "", trigger: str = "") -> QuerySet[PipelineRun]:
    """Runs, newest first, with their model and version (one query per page)."""
    runs = PipelineRun.objects.select_related("model", "version").order_by("-created_at", "-pk")
    if model:
        runs = runs.filter(model__slug=model)
    if state:
        runs = runs.filter(state=state)
    if trigger:
        runs = runs.filter(trigger=trigger)
    return runs


def run_get(*, pk: int) -> PipelineRun:
    """One run with its model, version and steps (prefetched)."""
    run = (
        PipelineRun.objects.select_related("model", "version")
        .prefetch_related("steps")
        .filter(pk=pk)
        .first()
    )
    if run is None:
        raise Http404(f"No run {pk}.")
    return run


def run_active_for(*, model_id: int) -> PipelineRun | None:
    return PipelineRun.objects.filter(model_id=model_id, state__in=ACTIVE_RUN_STATES).first()


def next_version_number(*, model: RegisteredModel) -> str:
    """A minor bump of the model's highest version (1.0.0 for a model without any)."""
    latest = ModelVersion.objects.filter(model=model).order_by(*SEMVER_DESC).first()
    if latest is None:
        return "1.0.0"
    return f"{latest.version_major}.{latest.version_minor + 1}.0"


def schedules_list() -> QuerySet[PeriodicTask]:
    """The retraining schedules (django-celery-beat rows of training.start_scheduled_run)."""
    return (
        PeriodicTask.objects.filter(task=SCHEDULED_TASK).select_related("crontab").order_by("name")
    )


def schedule_get(*, pk: int) -> PeriodicTask:
    task = schedules_list().filter(pk=pk).first()
    if task is None:
        raise Http404(f"No schedule {pk}.")
    return task


def production_rescored(
    *, version: ModelVersion, production: ModelVersion
) -> tuple[dict[str, Any], str] | None:
    """Production's metrics on `version`'s own held-out data, when the training run that
    produced `version` scored production there (the like-for-like comparison), with a
    sentence saying so; None otherwise. Recorded metrics of two versions come from
    different data and compare only roughly."""
    for run in PipelineRun.objects.filter(version=version).order_by("-pk"):
        comparison = run.comparison or {}
        if (
            comparison.get("basis") == "rescored"
            and comparison.get("production_version") == production.version
            and isinstance(comparison.get("production"), dict)
        ):
            return comparison["production"], (
                f"production {production.version} rescored on this version's held-out "
                f"data by training run #{run.pk}"
            )
    return None


def lake_imports_list() -> QuerySet[LakeImport]:
    """Imports, newest first (one query: the rows carry everything the list shows)."""
    return LakeImport.objects.order_by("-created_at", "-pk")


def lake_import_get(*, pk: int) -> LakeImport:
    """The import, or Http404."""
    try:
        return LakeImport.objects.get(pk=pk)
    except LakeImport.DoesNotExist:
        raise Http404("No such import.") from None

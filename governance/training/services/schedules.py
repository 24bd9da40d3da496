"""Retraining schedules: the django-celery-beat rows of `training.start_scheduled_run`,
editable in the portal."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat import validators
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from portal.audit.actors import Actor
from portal.audit.services import audit_record

CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def schedule_update(
    *,
    task: Any,
    crontab: dict[str, str],
    enabled: bool,
    actor: Actor,
    client_ip: str | None = None,
) -> Any:
    """Change when a retraining schedule fires (crontab fields) and whether it is on.

    Crontab rows are shared between tasks in django-celery-beat, so the task is pointed
    at the row for the new fields (created if needed) rather than the row edited in
    place. Refuses malformed fields (ValidationError naming the field). Saving the task
    tells beat's DatabaseScheduler to reload. Side effects: audit
    `pipeline_schedule.updated` with the before and after.
    """
    checks = {
        "minute": validators.minute_validator,
        "hour": validators.hour_validator,
        "day_of_week": validators.day_of_week_validator,
        "day_of_month": validators.day_of_month_validator,
        "month_of_year": validators.month_of_year_validator,
    }
    cleaned, errors = {}, {}
    for field in CRONTAB_FIELDS:
        value = str(crontab.get(field, "")).strip().replace(" ", "")
        if not value:
            errors[field] = "This field is required (* means every)."
            continue
        try:
            checks[field](value)
        except (ValidationError, ValueError) as error:
            errors[field] = " ".join(getattr(error, "messages", [str(error)]))
            continue
        cleaned[field] = value
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        task = (
            PeriodicTask.objects.select_for_update(of=("self",))
            .select_related("crontab")
            .get(pk=task.pk)
        )
        before = _schedule_state(task)
        zone = task.crontab.timezone if task.crontab else "UTC"
        schedule, _ = CrontabSchedule.objects.get_or_create(**cleaned, timezone=zone)
        task.crontab, task.enabled = schedule, bool(enabled)
        task.save()
        after = _schedule_state(task)
        if before != after:
            audit_record(
                action="pipeline_schedule.updated",
                actor=actor,
                object_type="pipeline_schedule",
                object_id=task.pk,
                payload={"name": task.name, "before": before, "after": after},
                client_ip=client_ip,
            )
    return task


def _schedule_state(task: Any) -> dict[str, Any]:
    crontab = task.crontab
    fields = {f: getattr(crontab, f) for f in CRONTAB_FIELDS} if crontab else {}
    return {"enabled": task.enabled, "crontab": fields}

"""The retraining schedules' task is `training.start_scheduled_run`: beat's rows point at
it after migrating, the data migration renames rows both ways, and a message queued
under the former name `training.scheduled_run` still runs."""

import importlib

import pytest
from django.apps import apps
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from governance.training.choices import SCHEDULED_TASK
from governance.training.tasks import scheduled_run_under_former_name
from worker.celery import app

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module(
    "governance.training.migrations.0004_start_scheduled_run_task_name"
)


def test_schedule_rows_point_at_start_scheduled_run_after_migrating():
    """The three schedules the migrations create name the task by its new name, and no
    row is left under the former one."""
    assert SCHEDULED_TASK == "training.start_scheduled_run"
    assert PeriodicTask.objects.filter(task="training.start_scheduled_run").count() == 3
    assert not PeriodicTask.objects.filter(task="training.scheduled_run").exists()


def test_rename_migration_moves_a_row_forward_and_back():
    """A row under the former name (an admin's edited schedule) keeps its crontab and
    state; only its task name changes, and the reverse migration changes it back."""
    crontab = CrontabSchedule.objects.create(minute="5", hour="1", timezone="UTC")
    row = PeriodicTask.objects.create(
        name="an edited schedule", task="training.scheduled_run", crontab=crontab, enabled=False
    )
    MIGRATION.rename_forward(apps, None)
    row.refresh_from_db()
    assert (row.task, row.crontab_id, row.enabled) == (
        "training.start_scheduled_run",
        crontab.pk,
        False,
    )
    MIGRATION.rename_backward(apps, None)
    row.refresh_from_db()
    assert row.task == "training.scheduled_run"


def test_task_under_former_name_is_registered_and_runs_the_scheduled_run():
    """A message queued as `training.scheduled_run` before an upgrade finds its task,
    which does what `training.start_scheduled_run` does."""
    app.loader.import_default_modules()
    assert app.tasks["training.scheduled_run"].name == "training.scheduled_run"
    assert app.tasks["training.start_scheduled_run"].name == "training.start_scheduled_run"
    assert scheduled_run_under_former_name("no-such-model") == "no model no-such-model"

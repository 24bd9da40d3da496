"""The retraining schedules' task is named `training.start_scheduled_run` now (task names
are `<app>.<verb>`): point beat's rows at the new name. Rows an admin edited keep their
crontab and state; only the task name changes. Messages already queued under the old
name still run (governance.training.tasks keeps it registered)."""

from django.db import migrations
from django.utils import timezone

OLD = "training.scheduled_run"
NEW = "training.start_scheduled_run"


def _rename(apps, old: str, new: str) -> None:
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(task=old).update(task=new):
        # Historical models skip PeriodicTask.save()'s signal: tell beat the table changed.
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def rename_forward(apps, schema_editor):
    _rename(apps, OLD, NEW)


def rename_backward(apps, schema_editor):
    _rename(apps, NEW, OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0003_run_registry_operation"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(rename_forward, rename_backward)]

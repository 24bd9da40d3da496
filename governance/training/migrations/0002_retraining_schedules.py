"""The retraining schedules: weekly for demand forecasting and product recommendation,
seasonal (the first day of each season) for customer segmentation. Editable in the
portal; beat reads them from the database (django-celery-beat's DatabaseScheduler)."""

import json

from django.db import migrations
from django.utils import timezone

TASK = "training.scheduled_run"
TIMEZONE = "Europe/London"
# slug -> (name, crontab fields: minute, hour, day_of_week, day_of_month, month_of_year)
SCHEDULES = {
    "demand-forecasting": (
        "Retrain demand forecasting weekly",
        ("0", "3", "1", "*", "*"),
    ),
    "customer-segmentation": (
        "Retrain customer segmentation each season",
        ("0", "3", "*", "1", "3,6,9,12"),
    ),
    "product-recommendation": (
        "Retrain product recommendation weekly",
        ("0", "4", "1", "*", "*"),
    ),
}


def create_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for slug, (name, (minute, hour, day_of_week, day_of_month, month)) in SCHEDULES.items():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_week=day_of_week,
            day_of_month=day_of_month,
            month_of_year=month,
            timezone=TIMEZONE,
        )
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": TASK,
                "crontab": crontab,
                "args": json.dumps([slug]),
                "enabled": True,
                "description": f"Scheduled retraining of {slug}.",
            },
        )
    # Historical models skip PeriodicTask.save()'s signal: tell beat the table changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]

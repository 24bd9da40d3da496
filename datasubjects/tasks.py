"""Celery tasks of the data subjects app: thin wrappers around its services."""

from celery import shared_task

from datasubjects.services import requests_deadline_sweep


@shared_task(name="datasubjects.deadlines_sweep")
def deadlines_sweep() -> str:
    """Remind privacy officers of requests due soon, alert overdue ones (beat: hourly)."""
    sweep = requests_deadline_sweep()
    return f"{sweep.reminded} reminded, {sweep.overdue} overdue"

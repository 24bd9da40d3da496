"""The Celery app shared by every portal worker.

Brokers: kombu's filesystem transport on the embedded default (no server needed),
Redis or RabbitMQ in production (CELERY_BROKER_URL).
"""

import os

from celery import Celery

from worker.beat import BEAT_SCHEDULE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    beat_schedule=BEAT_SCHEDULE,
    task_ignore_result=True,
    # A task's effect matters more than its throughput: acknowledge only after it ran,
    # and give the message back if the worker process dies in the middle of it.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    timezone="UTC",
)
app.autodiscover_tasks()

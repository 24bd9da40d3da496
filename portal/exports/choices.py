"""States of an export job."""

from django.db import models


class ExportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Ready"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


ACTIVE_EXPORT_STATES = (ExportState.QUEUED, ExportState.RUNNING)

"""Export jobs: a file too big to make inside a web request, made by a worker.

The job row is the truth (as NetBox keeps its background jobs): who asked for what,
how far the worker got, its log, the file it made and when that file goes away. A
worker that dies mid-way leaves the row running; the redelivered task starts the same
job again and writes the same file name, so one job never leaves two files.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.exports.choices import ACTIVE_EXPORT_STATES, ExportState


class ExportJob(models.Model):
    """One export asked for by one person: a registered kind (`governance.card_pdf`)
    with its parameters, made in the background, downloadable until it expires."""

    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    title = models.CharField(max_length=200)
    state = models.CharField(max_length=12, choices=ExportState.choices, default=ExportState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    log = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The result: a name in the "exports" storage, never served from a public URL.
    file_name = models.CharField(max_length=300, blank=True)
    filename = models.CharField(max_length=200, blank=True)  # offered to the browser
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "expires_at"], name="export_expiry_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__lte=100),
                name="export_progress_percent",
                violation_error_message="Progress is a percentage (0 to 100).",
            )
        ]

    def __str__(self) -> str:
        return f"export #{self.pk} {self.kind}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_EXPORT_STATES

    @property
    def is_ready(self) -> bool:
        return self.state == ExportState.SUCCEEDED and bool(self.file_name)

from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.models import ModelVersion, RegisteredModel
from governance.training.choices import (
    ACTIVE_IMPORT_STATES,
    ACTIVE_RUN_STATES,
    ImportState,
    RunBackend,
    RunState,
    RunTrigger,
    StepState,
)


class PipelineRun(models.Model):
    """One training run of a model: persisted, with its steps, logs and outcome.

    At most one run per model is queued or running (a database constraint), so a
    second request while one runs is refused. The version number is reserved when the
    run is created: a retried run registers the same version, idempotently, never a
    second one.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    reason = models.CharField(max_length=300, blank=True)
    requested_by = models.CharField(max_length=80, blank=True)  # pseudonymous actor
    backend = models.CharField(max_length=16, choices=RunBackend.choices, default=RunBackend.LOCAL)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    planned_version = models.CharField(max_length=64)
    snapshot_id = models.CharField(max_length=200, blank=True)  # the lake's content hash
    # The data version of the source the snapshot came from: an import's file
    # checksums, a BigQuery snapshot, a DVC revision; the content hash for the sample.
    data_version = models.CharField(max_length=1000, blank=True)
    params = models.JSONField(default=dict, blank=True)
    external_ref = models.CharField(max_length=300, blank=True)  # Vertex AI PipelineJob name
    # The Vertex AI UploadModel operation of the run's version, kept before it is waited
    # on, so a retried poll follows the same upload instead of uploading again.
    registry_operation = models.CharField(max_length=300, blank=True)
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # False only for the demo's first training of a model, which has nothing of its own
    # to compare with: it registers the version and goes no further.
    compare_with_production = models.BooleanField(default=True)
    comparison = models.JSONField(default=dict, blank=True)
    outcome = models.TextField(blank=True)  # why it succeeded, was discarded or failed
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(state__in=[s.value for s in ACTIVE_RUN_STATES]),
                name="one_active_run_per_model",
                violation_error_message="A run of this model is already queued or running.",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.model.slug}"

    @property
    def pipeline_run_ref(self) -> str:
        """How lineage names this run (a version's `pipeline_run_id`)."""
        return f"portal-run-{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    @property
    def state_label(self) -> str:
        """The state as people read it, saying what happened to the version: a
        succeeded run sent it to review only when it compared it with production
        (that is when the canary review opens)."""
        if self.state == RunState.SUCCEEDED:
            if self.comparison:
                return "Succeeded: version sent to review"
            return "Succeeded: version registered, no review opened"
        return self.get_state_display()

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()


class PipelineStepRun(models.Model):
    """One step of a run (snapshot, validate, features, train, evaluate, register)."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=40)
    state = models.CharField(max_length=16, choices=StepState.choices, default=StepState.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="one_step_per_position")
        ]

    def __str__(self) -> str:
        return f"{self.run} / {self.name}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class LakeImport(models.Model):
    """One import of the client's data into the lake, asked for from the portal and run
    by a worker: its sources (one per table: a path in the import folder, gs://, bq://
    or dvc://), the column mapping and rejection limit, how far it got, and its outcome
    (the snapshot and data version, or the refusal), with the rejection report.

    The row is the truth, as for export jobs: a worker that dies mid-import leaves it
    running, and the redelivered task imports again; the lake is content-addressed, so
    the same data gives the same snapshot, never a second one.
    """

    sources = models.JSONField(default=list)  # [{"table": ..., "uri": ...}]
    mapping = models.JSONField(default=dict, blank=True)  # {table: {theirs: ours}}
    max_rejected = models.FloatField(default=0.05)  # a share of each table's rows
    state = models.CharField(max_length=16, choices=ImportState.choices, default=ImportState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    stage = models.CharField(max_length=200, blank=True)  # what the worker is doing now
    report = models.JSONField(default=dict, blank=True)  # the rejection report
    snapshot_id = models.CharField(max_length=200, blank=True)
    data_version = models.CharField(max_length=1000, blank=True)  # outside the lake
    created_snapshot = models.BooleanField(default=False)  # False: the lake had it
    outcome = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by = models.CharField(max_length=80, blank=True)  # pseudonymous actor
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__lte=100),
                name="lake_import_progress_percent",
                violation_error_message="Progress is a percentage (0 to 100).",
            ),
            models.CheckConstraint(
                condition=Q(max_rejected__gte=0, max_rejected__lte=1),
                name="lake_import_max_rejected_share",
                violation_error_message="The rejection limit is a share from 0 to 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"lake import {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_IMPORT_STATES

    @property
    def max_rejected_percent(self) -> float:
        return round(self.max_rejected * 100, 2)

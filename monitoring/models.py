from django.conf import settings
from django.db import models
from django.utils import timezone

from monitoring.choices import DriftMethod, DriftVerdict


class MetricThreshold(models.Model):
    """A model's own warning and critical thresholds for one catalogue metric, replacing
    the catalogue's defaults. Changed only through `threshold_set`, which audits it."""

    model = models.ForeignKey(
        "governance.RegisteredModel", on_delete=models.CASCADE, related_name="metric_thresholds"
    )
    metric = models.CharField(max_length=64)
    warning = models.FloatField()
    critical = models.FloatField()
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "metric"],
                name="one_threshold_per_model_metric",
                violation_error_message="This model already has thresholds for this metric.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_id} {self.metric}: {self.warning} / {self.critical}"


class DriftResult(models.Model):
    """One drift score of one feature of a version over one window: the evidence behind
    the drift panels, the audit evidence packs and the post-market monitoring record.
    `value` is empty when the window had too few samples for a verdict."""

    version = models.ForeignKey(
        "governance.ModelVersion", on_delete=models.PROTECT, related_name="drift_results"
    )
    track = models.CharField(max_length=16, default="stable")  # stable | canary
    feature = models.CharField(max_length=100)
    method = models.CharField(max_length=16, choices=DriftMethod.choices)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField()
    verdict = models.CharField(max_length=16, choices=DriftVerdict.choices)
    reference_count = models.PositiveBigIntegerField()
    current_count = models.PositiveBigIntegerField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-window_end", "feature", "method"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "track", "feature", "method", "window_start", "window_end"],
                name="one_drift_score_per_window",
                violation_error_message="This window's drift is already recorded.",
            ),
            models.CheckConstraint(
                condition=models.Q(window_end__gt=models.F("window_start")),
                name="drift_window_ends_after_start",
                violation_error_message="A window ends after it starts.",
            ),
        ]
        indexes = [models.Index(fields=["version", "-window_end"], name="drift_version_window_idx")]

    def __str__(self) -> str:
        return f"{self.version_id} {self.feature} {self.method} {self.verdict}"

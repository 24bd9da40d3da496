from django.conf import settings
from django.db import models
from django.utils import timezone


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

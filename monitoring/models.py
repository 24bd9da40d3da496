from django.conf import settings
from django.db import models
from django.utils import timezone

from monitoring.choices import (
    ActionKind,
    ActionOutcome,
    DriftMethod,
    DriftVerdict,
    IncidentSource,
    IncidentStatus,
    Severity,
    TimelineKind,
)


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


class Incident(models.Model):
    """Something wrong in production the portal was told about: an alert from
    Alertmanager (or a finding of the deployment reconciler or canary analysis), who
    owns it, and everything that happened to it on its timeline.

    `fingerprint` identifies the alert (Alertmanager's hash of its labels); at most one
    incident per fingerprint is not closed, so a re-firing alert updates it."""

    fingerprint = models.CharField(max_length=64)
    source = models.CharField(
        max_length=32, choices=IncidentSource.choices, default=IncidentSource.ALERTMANAGER
    )
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.FIRING
    )
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    model = models.ForeignKey(
        "governance.RegisteredModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_incidents",
    )
    started_at = models.DateTimeField()
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=~models.Q(status="closed"),
                name="one_open_incident_per_fingerprint",
                violation_error_message="An incident for this alert is already open.",
            )
        ]
        indexes = [models.Index(fields=["status", "-opened_at"], name="incident_status_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class IncidentEvent(models.Model):
    """One entry of an incident's timeline: fired, acknowledged, action taken, resolved,
    closed; `detail` says what (the alert's start time, the retraining run started)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(max_length=16, choices=TimelineKind.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=120, blank=True)  # pseudonymous, as the ledger
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind}"


class AlertDelivery(models.Model):
    """One alert of one Alertmanager notification, kept so a repeated notification (the
    same group, alert, start and status) changes nothing twice."""

    group_key = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64)
    starts_at = models.DateTimeField()
    status = models.CharField(max_length=16)
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group_key", "fingerprint", "starts_at", "status"],
                name="one_delivery_per_alert_state",
                violation_error_message="This alert notification was received already.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint} {self.status} {self.starts_at}"


class IncidentAction(models.Model):
    """What the portal did by policy about one firing of an alert (fingerprint and start
    time): a retraining run started, the board notified. One row per firing and kind, so
    a repeated or re-delivered notification never acts twice."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="actions")
    fingerprint = models.CharField(max_length=64)
    starts_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    outcome = models.CharField(max_length=16, choices=ActionOutcome.choices)
    reference = models.CharField(max_length=100, blank=True)  # e.g. pipeline run id
    reason = models.CharField(max_length=300, blank=True)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["taken_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint", "starts_at", "kind"],
                name="one_action_per_firing_and_kind",
                violation_error_message="This action was already taken for this firing.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind} {self.outcome}"

    @property
    def run_id(self) -> int | None:
        prefix, _, number = self.reference.partition(":")
        return int(number) if prefix == "pipeline_run" and number.isdigit() else None


class DriftReference(models.Model):
    """A version's training reference for one serving feature: a sample of the values
    the training data held (`pipelines.reference`), stored when training registered the
    version. Drift windows are scored against it; never changed afterwards."""

    version = models.ForeignKey(
        "governance.ModelVersion", on_delete=models.CASCADE, related_name="drift_references"
    )
    feature = models.CharField(max_length=100)
    values = models.JSONField(default=list)  # floats, at most a few thousand
    count = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["version", "feature"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "feature"],
                name="one_drift_reference_per_feature",
                violation_error_message="This version already has a reference for the feature.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version_id} {self.feature} ({self.count})"


class QualityResult(models.Model):
    """One quality metric of a version's track over one window of predictions, joined
    with the ground truth that arrived for them (MAE, hit rate, silhouette...): evidence
    for the dashboards, the audit evidence packs and the post-market monitoring record.
    `value` is empty when the window had too few joined predictions for a figure."""

    version = models.ForeignKey(
        "governance.ModelVersion", on_delete=models.PROTECT, related_name="quality_results"
    )
    track = models.CharField(max_length=16, default="stable")  # stable | canary
    metric = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    sample_count = models.PositiveBigIntegerField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-window_end", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "track", "metric", "window_start", "window_end"],
                name="one_quality_figure_per_window",
                violation_error_message="This window's quality figure is already recorded.",
            ),
            models.CheckConstraint(
                condition=models.Q(window_end__gt=models.F("window_start")),
                name="quality_window_ends_after_start",
                violation_error_message="A window ends after it starts.",
            ),
        ]
        indexes = [
            models.Index(fields=["version", "-window_end"], name="quality_version_window_idx")
        ]

    def __str__(self) -> str:
        return f"{self.version_id} {self.track} {self.metric} {self.value}"

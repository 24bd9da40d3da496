from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel
from governance.rollouts.choices import (
    ACTIVE_ROLLOUT_STATES,
    AnalysisResult,
    RolloutBackendName,
    RolloutState,
)


class Rollout(models.Model):
    """One version of a model shipped to one target, canary step by canary step.

    The row holds the desired state (state, step, weight); `synced` says whether the
    backend has been told it yet. Decisions bump `revision`, so a worker that read an
    older row cannot decide the same step twice; telling the backend is idempotent
    (set this weight, promote this version), so a worker killed between the two
    repeats only the telling. At most one active rollout per (model, target).
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="rollouts")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="rollouts")
    target = models.CharField(max_length=16, choices=Target.choices)
    # The version serving the target when the rollout started: the canary's baseline
    # and where traffic goes back to.
    stable_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="rollouts_as_stable"
    )
    backend = models.CharField(max_length=16, choices=RolloutBackendName.choices)
    strategy = models.JSONField(default=dict)  # steps, bake_seconds, thresholds
    state = models.CharField(
        max_length=16, choices=RolloutState.choices, default=RolloutState.PENDING
    )
    step_index = models.PositiveIntegerField(default=0)
    weight = models.PositiveSmallIntegerField(default=0)  # canary's share of traffic, %
    synced = models.BooleanField(default=False)  # the backend has the state above
    revision = models.PositiveIntegerField(default=0)
    review_id = models.PositiveIntegerField(null=True, blank=True)
    attestation = models.TextField(blank=True)  # the gate's signed statement it started from
    external_ref = models.CharField(max_length=300, blank=True)  # e.g. Cloud Deploy rollout
    outcome = models.TextField(blank=True)
    requested_by = models.CharField(max_length=80, blank=True)  # pseudonymous actor
    created_at = models.DateTimeField(default=timezone.now)
    step_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "target"],
                condition=Q(state__in=list(ACTIVE_ROLLOUT_STATES)),
                name="one_active_rollout_per_model_target",
                violation_error_message="A rollout of this model to this target is active.",
            )
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk}: {self.model.slug} {self.version.version} to {self.target}"

    @property
    def steps(self) -> list[int]:
        return list(self.strategy.get("steps", []))

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_ROLLOUT_STATES


class RolloutStep(models.Model):
    """One canary step: its weight, when traffic reached it, its analysis."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="step_records")
    index = models.PositiveIntegerField()
    weight = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(null=True, blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=16, choices=AnalysisResult.choices, blank=True)
    analysis = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "index"], name="one_record_per_step")
        ]

    def __str__(self) -> str:
        return f"step {self.index} ({self.weight}%) of rollout {self.rollout_id}"


class CanaryPolicy(models.Model):
    """The canary analysis thresholds of one target: how much worse than the stable
    version a canary may be before it is rolled back, and how much traffic a verdict
    needs. A rollout copies its target's thresholds into its strategy when it starts,
    so its analyses are judged by the limits it was started under. Changed only
    through `canary_policy_update`, which audits the change."""

    target = models.CharField(max_length=16, choices=Target.choices, unique=True)
    # Requests per track in the analysis window below which nothing is concluded.
    min_requests = models.PositiveIntegerField(default=20)
    # The canary's error rate minus the stable version's (0.02 = two points).
    max_error_rate_increase = models.FloatField(default=0.02)
    # The canary's p95 (p99) latency over the stable version's.
    max_p95_latency_ratio = models.FloatField(default=1.5)
    max_p99_latency_ratio = models.FloatField(default=1.5)
    # A latency ratio only counts when the canary is also at least this much slower.
    min_latency_increase_seconds = models.FloatField(default=0.005)
    # |canary mean prediction - stable mean| / |stable mean|.
    max_prediction_shift = models.FloatField(default=0.25)
    updated_by = models.CharField(max_length=80, blank=True)  # pseudonymous actor
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["target"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_requests__gte=1),
                name="canary_policy_needs_traffic",
                violation_error_message="A verdict needs at least one request per track.",
            ),
            models.CheckConstraint(
                condition=Q(max_p95_latency_ratio__gte=1) & Q(max_p99_latency_ratio__gte=1),
                name="canary_policy_latency_ratio_at_least_one",
                violation_error_message="A latency ratio limit below 1 fails equal latency.",
            ),
        ]

    def __str__(self) -> str:
        return f"canary thresholds for {self.target}"

    def thresholds(self) -> dict[str, float]:
        """The thresholds in the shape `canary_analyse` takes."""
        return {name: float(getattr(self, name)) for name in CANARY_THRESHOLD_FIELDS}


# The thresholds a CanaryPolicy holds, in the order the pages show them.
CANARY_THRESHOLD_FIELDS: tuple[str, ...] = (
    "min_requests",
    "max_error_rate_increase",
    "max_p95_latency_ratio",
    "max_p99_latency_ratio",
    "min_latency_increase_seconds",
    "max_prediction_shift",
)

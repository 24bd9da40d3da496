from django.conf import settings
from django.db import models
from django.utils import timezone

from governance.choices import (
    CardSectionKey,
    LifecycleState,
    ModelKind,
    RiskTier,
    Target,
)

# Limits on free text people type (TextField columns have none of their own): long
# enough for any honest use, short enough that one request cannot store megabytes.
MODEL_DESCRIPTION_MAX_CHARS = 5_000
CARD_SECTION_MAX_CHARS = 20_000  # a section's Markdown text
CARD_SECTION_LIST_MAX_CHARS = 10_000  # a structured section's lines (owners, fields, ...)


class RegisteredModel(models.Model):
    """One model the client runs in production (e.g. `demand-forecasting`)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=32, choices=ModelKind.choices)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_models",
    )
    risk_tier = models.CharField(max_length=16, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    # Vertex AI Model Registry resource name (projects/../locations/../models/..), if synced
    registry_resource_name = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class ModelVersion(models.Model):
    """One trained version of a model, with its full lineage.

    Lineage: data version (content hash, DVC revision or BigQuery snapshot id), code
    version (git SHA), pipeline run, container image digest. `registration_digest` is
    the digest of the registration body, so a retried CI registration is recognised.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=64)  # semantic version, e.g. 2.1.0
    version_major = models.PositiveIntegerField(default=0)
    version_minor = models.PositiveIntegerField(default=0)
    version_patch = models.PositiveIntegerField(default=0)
    tag = models.CharField(max_length=100, blank=True)  # e.g. recommendation-v2
    artifact_uri = models.CharField(max_length=500, blank=True)
    image_uri = models.CharField(max_length=500, blank=True)
    image_digest = models.CharField(max_length=100, blank=True)  # sha256:...
    registry_resource_name = models.CharField(max_length=300, blank=True)
    registry_version_id = models.CharField(max_length=64, blank=True)
    registry_aliases = models.JSONField(default=list, blank=True)
    data_version = models.CharField(max_length=200, blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    pipeline_run_id = models.CharField(max_length=200, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)  # {"mape": 0.12, ...}
    metric_slices = models.JSONField(default=dict, blank=True)  # {"category": {"food": {...}}}
    state = models.CharField(
        max_length=32, choices=LifecycleState.choices, default=LifecycleState.REGISTERED
    )
    registration_digest = models.CharField(max_length=64, blank=True)
    # The normalised registration body, to tell a retried CI call (same body) from a
    # contradicting one and to name the fields that differ.
    registration_body = models.JSONField(default=dict, blank=True)
    registered_by = models.CharField(max_length=80, blank=True)  # pseudonymous actor id
    registered_at = models.DateTimeField(default=timezone.now)
    metrics_updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "-version_major", "-version_minor", "-version_patch"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "version"],
                name="one_version_number_per_model",
                violation_error_message="This model already has a version with this number.",
            )
        ]
        indexes = [models.Index(fields=["model", "state"], name="version_model_state_idx")]

    # How the audit ledger names a version: this object type, and `audit_id`.
    AUDIT_OBJECT_TYPE = "model_version"

    def __str__(self) -> str:
        return f"{self.model.slug}@{self.version}"

    @property
    def audit_id(self) -> str:
        """The version's object id in the audit ledger: `demand-forecasting@2.1.0`."""
        return f"{self.model.slug}@{self.version}"

    @property
    def lineage_complete(self) -> bool:
        return bool(self.data_version and self.code_version and self.image_digest)


class TargetAssignment(models.Model):
    """Which version serves a target (staging, canary, production) of a model now."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="assignments")
    target = models.CharField(max_length=16, choices=Target.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="assignments")
    since = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "target"], name="one_version_per_target")
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} {self.target} = {self.version.version}"


class ModelCard(models.Model):
    """The model card of one version: sections, revision history, completeness."""

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="card")
    inherited_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"card of {self.version}"


class CardSection(models.Model):
    """One section of a card: Markdown text plus structured data where the section has
    some (data schema fields, training data facts, fairness rows).

    `inherited` marks a section copied from the previous version's card that nobody has
    confirmed for this version yet.
    """

    card = models.ForeignKey(ModelCard, on_delete=models.CASCADE, related_name="sections")
    key = models.CharField(max_length=40, choices=CardSectionKey.choices)
    content = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    inherited = models.BooleanField(default=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["card", "key"], name="one_section_per_key")]

    def __str__(self) -> str:
        return f"{self.card} / {self.key}"

    @property
    def is_empty(self) -> bool:
        return not self.content.strip() and not self.data


class CardRevision(models.Model):
    """Every save of a section: who changed what, when. Numbered per card."""

    card = models.ForeignKey(ModelCard, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    section_key = models.CharField(max_length=40, choices=CardSectionKey.choices)
    content = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    inherited = models.BooleanField(default=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=80, blank=True)  # pseudonymous, for machine edits
    comment = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["card", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["card", "number"], name="one_revision_number_per_card")
        ]

    def __str__(self) -> str:
        return f"{self.card} r{self.number} {self.section_key}"

"""Review board models: policies, reviews, decisions."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.choices import (
    LIVE_STATES,
    OPEN_STATES,
    OUTBOX_LIVE_STATES,
    OutboxState,
    PushOutcome,
    ReviewSource,
    ReviewState,
    Verdict,
)
from portal.accounts.choices import Role

# The fields of a policy a review keeps a copy of when it opens.
POLICY_SNAPSHOT_FIELDS = (
    "required_roles",
    "requester_may_approve",
    "review_open_days",
    "approval_valid_days",
    "check_card_complete",
    "check_fairness_present",
    "check_lineage_complete",
    "check_metrics_not_worse",
    "check_previous_target",
    "metric_tolerance_default",
    "metric_tolerances",
    "metric_directions",
)


class ReviewPolicy(models.Model):
    """What a promotion to a target needs: which board roles approve and how many of
    each, whether the requester may approve, how long a review waits and an approval
    stays valid, and which automated checks must pass.

    One default per target (`model` empty); a model may override a target's default.
    Reviews copy the policy they open under (`Review.policy_snapshot`), so editing a
    policy never changes a review already under way.
    """

    target = models.CharField(max_length=16, choices=Target.choices)
    model = models.ForeignKey(
        RegisteredModel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="review_policies",
        help_text="Empty: the default for every model.",
    )
    # {role: how many distinct people holding it must approve}, e.g. {"devops": 1}
    required_roles = models.JSONField(default=dict)
    requester_may_approve = models.BooleanField(default=False)
    review_open_days = models.PositiveIntegerField(
        default=14,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Days a review waits for decisions before it expires.",
    )
    approval_valid_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Days an approval stays valid for deploying.",
    )
    check_card_complete = models.BooleanField(default=True)
    check_fairness_present = models.BooleanField(default=True)
    check_lineage_complete = models.BooleanField(default=True)
    check_metrics_not_worse = models.BooleanField(default=True)
    check_previous_target = models.BooleanField(
        default=False, help_text="Canary needs staging approved first; production needs canary."
    )
    # How much worse than production a metric may be, relative (0.05 = 5% worse).
    metric_tolerance_default = models.FloatField(
        default=0.05, validators=[MinValueValidator(0.0), MaxValueValidator(10.0)]
    )
    # {metric: tolerance, or null to leave that metric unjudged}
    metric_tolerances = models.JSONField(default=dict, blank=True)
    # {metric: "lower" | "higher"} for metrics the catalogue gives no direction
    metric_directions = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model__slug", "target"]
        constraints = [
            models.UniqueConstraint(
                fields=["target"],
                condition=Q(model__isnull=True),
                name="one_default_policy_per_target",
                violation_error_message="There is already a default policy for this target.",
            ),
            models.UniqueConstraint(
                fields=["model", "target"],
                name="one_policy_per_model_target",
                violation_error_message="This model already overrides this target's policy.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug if self.model_id else 'default'} / {self.target}"

    def snapshot(self) -> dict[str, Any]:
        return {
            "policy_id": self.pk,
            "model": self.model.slug if self.model_id else None,
            "target": self.target,
            **{field: getattr(self, field) for field in POLICY_SNAPSHOT_FIELDS},
        }


class Review(models.Model):
    """A request that the board approve one version for one target.

    At most one live review (waiting, changes requested, or approved) per version and
    target; after a rejection or expiry a new one may be opened. `evidence_revision`
    counts the evidence changes seen since opening: decisions made on an older
    revision are stale.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="reviews")
    target = models.CharField(max_length=16, choices=Target.choices)
    state = models.CharField(
        max_length=20, choices=ReviewState.choices, default=ReviewState.PENDING
    )
    policy = models.ForeignKey(
        ReviewPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    policy_snapshot = models.JSONField(default=dict)
    source = models.CharField(max_length=16, choices=ReviewSource.choices)
    external_ref = models.CharField(max_length=300, blank=True)  # e.g. the Cloud Deploy rollout
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requested_reviews",
    )
    requested_by_actor = models.CharField(max_length=80)  # pseudonymous, e.g. token:ab12cd34
    opened_at = models.DateTimeField(default=timezone.now)
    # While open: when it expires undecided. Once approved: when the approval lapses.
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    evidence_revision = models.PositiveIntegerField(default=0)
    checks = models.JSONField(default=list)  # [{"key", "label", "passed", "detail"}]
    checks_evaluated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "target"],
                condition=Q(state__in=LIVE_STATES),
                name="one_live_review_per_version_target",
                violation_error_message="This version already has a review for this target.",
            )
        ]
        indexes = [models.Index(fields=["state", "expires_at"], name="review_state_expiry_idx")]

    def __str__(self) -> str:
        return f"review {self.pk}: {self.version} to {self.target}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def required_roles(self) -> dict[str, int]:
        return self.policy_snapshot.get("required_roles", {})

    @property
    def required_approvals(self) -> int:
        return sum(self.required_roles.values())

    @property
    def failed_checks(self) -> list[str]:
        return [check["key"] for check in self.checks if not check["passed"]]

    def approval_lapses_at(self, decided_at: timezone.datetime) -> timezone.datetime:
        return decided_at + timedelta(days=self.policy_snapshot.get("approval_valid_days", 30))


class ReviewDecision(models.Model):
    """One board member's verdict on a review, in one of their board roles.

    A final record: the verdict and comment are never edited. A decision stops
    counting (`active` false) when the evidence changes after it (`stale_at`) or when
    its author withdraws it (`withdrawn_at`, by a new `withdraw` decision). Each member
    has at most one counting decision per review.
    """

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    role = models.CharField(max_length=32)
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(default=timezone.now)
    evidence_revision = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    stale_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["decided_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "reviewer"],
                condition=Q(active=True),
                name="one_counting_decision_per_reviewer",
                violation_error_message="You have already decided on this review.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.verdict} by {self.reviewer_id} as {self.role} on review {self.review_id}"

    @property
    def reviewer_ref(self) -> str:
        """The reviewer's pseudonymous id, as the ledger and the gate name them."""
        return f"user:{self.reviewer_id}"

    @property
    def role_label(self) -> str:
        """The board role as people read it ("Data science lead"), not its slug."""
        return dict(Role.choices).get(self.role, self.role)


# --- Cloud Deploy approvals -----------------------------------------------------------


class PubSubMessage(models.Model):
    """One Pub/Sub message a push subscription delivered to a hook, kept by its
    messageId so a redelivery (Pub/Sub delivers at least once) is recognised and acts
    no second time.

    For a Cloud Deploy approval request it names the rollout and the review that
    answers it (`review`): when that review is decided, every rollout linked to it
    gets the answer through the outbox.
    """

    message_id = models.CharField(max_length=200, unique=True)
    subscription = models.CharField(max_length=300)
    published_at = models.DateTimeField()
    attributes = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=40, blank=True)
    rollout = models.CharField(max_length=300, blank=True)
    outcome = models.CharField(max_length=20, choices=PushOutcome.choices)
    reason = models.CharField(max_length=500, blank=True)
    review = models.ForeignKey(
        Review,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pubsub_messages",
    )

    class Meta:
        ordering = ["-received_at", "-pk"]
        indexes = [models.Index(fields=["review", "action"], name="pubsub_review_action_idx")]

    def __str__(self) -> str:
        return f"pubsub message {self.message_id}: {self.outcome}"


class RolloutApprovalOutbox(models.Model):
    """The board's answer to a Cloud Deploy rollout waiting for approval, written in
    the transaction that decided the review and sent afterwards by a Celery task
    (`reviews.clouddeploy_approve`), so a decision is never lost between our commit
    and Cloud Deploy's answer, and never sent twice.

    At most one live row (pending, sending, failed, sent or superseded) per rollout.
    `rollout` is the name as Cloud Deploy's API returns it (see `rollout_name_canonical`).
    """

    review = models.ForeignKey(Review, on_delete=models.PROTECT, related_name="rollout_approvals")
    rollout = models.CharField(max_length=300)
    approved = models.BooleanField()
    state = models.CharField(
        max_length=16, choices=OutboxState.choices, default=OutboxState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Cloud Deploy's approvalState when the task last read the rollout.
    approval_state = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    attempted_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["rollout"],
                condition=Q(state__in=OUTBOX_LIVE_STATES),
                name="one_live_answer_per_rollout",
                violation_error_message="This rollout already has an answer from the board.",
            )
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="outbox_state_created_idx")]

    def __str__(self) -> str:
        verb = "approve" if self.approved else "reject"
        return f"{verb} {self.rollout} ({self.state})"


class ImageAttestationState(models.TextChoices):
    PENDING = "pending", "Waiting to be created"
    # Claimed by a send task for a lease: the call to Container Analysis may be in flight.
    SENDING = "sending", "Being created"
    CREATED = "created", "Created"
    FAILED = "failed", "Failed"


class ImageAttestation(models.Model):
    """The Binary Authorization attestation of a version's image, owed once the board
    approved it for production: written in the transaction that decided the review and
    created afterwards by a Celery task (`reviews.binauthz_attest`) as a Container
    Analysis occurrence on the attestor's note, so no outside call happens inside the
    approval's transaction and an approval is never left without its attestation.

    One row per (version, image digest). Without an attestor configured
    (`BINAUTHZ_ATTESTOR` empty) the signed statement is kept here only (`occurrence`
    starts with `local:`).
    """

    version = models.ForeignKey(
        "governance.ModelVersion", on_delete=models.PROTECT, related_name="image_attestations"
    )
    review = models.ForeignKey(Review, on_delete=models.PROTECT, related_name="image_attestations")
    image_digest = models.CharField(max_length=80)
    resource_uri = models.CharField(max_length=600)
    attestor = models.CharField(max_length=300, blank=True)
    state = models.CharField(
        max_length=16, choices=ImageAttestationState.choices, default=ImageAttestationState.PENDING
    )
    # The in-toto statement as signed, the key's id and the signature (base64).
    payload = models.TextField(blank=True)
    public_key_id = models.CharField(max_length=200, blank=True)
    signature = models.TextField(blank=True)
    occurrence = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "image_digest"],
                name="one_attestation_per_version_image",
                violation_error_message="This image of the version is already attested.",
            )
        ]

    def __str__(self) -> str:
        return f"attestation of {self.resource_uri} ({self.state})"


# --- the gate's answer, kept current ---------------------------------------------------


class GateState(models.Model):
    """The gate's answer for one (version, target) that has a review, as the review
    services left it, so a gate request reads one row instead of recomputing it.

    Written only by `gate_state_refresh`, inside the transaction of every change that
    can move the answer (a review opened, decided, withdrawn, re-checked, sent back by
    changed evidence, expired), with this row locked after the review's and before the
    audit chain head. The clock is applied when the row is read: `review_state` and
    `expires_at` say when an approval or a waiting review lapses, so no write is
    needed for the answer to turn "expired" on time. `revision` grows with every
    refresh; the cached attestation is stored only for the revision it was signed for.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    target = models.CharField(max_length=16, choices=Target.choices)
    review = models.ForeignKey("Review", on_delete=models.CASCADE, related_name="+")
    review_state = models.CharField(max_length=20, choices=ReviewState.choices)
    expires_at = models.DateTimeField()
    # [{"role", "reviewer", "decided_at"}] of the counting approvals, oldest first.
    approvals = models.JSONField(default=list)
    missing_roles = models.JSONField(default=list)
    failed_checks = models.JSONField(default=list)
    revision = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(default=timezone.now)
    # The last attestation signed for this revision, and the key ("kid:sha256") it was
    # signed with: re-signed when it nears its expiry or the signing key changes.
    attestation = models.TextField(blank=True)
    attestation_key = models.CharField(max_length=120, blank=True)
    attestation_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "target"],
                name="one_gate_state_per_version_target",
                violation_error_message="This version already has a gate answer for this target.",
            )
        ]

    def __str__(self) -> str:
        return f"gate of {self.version_id} to {self.target}: {self.review_state}"

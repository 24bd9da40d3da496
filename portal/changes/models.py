"""Governance changes that need a second person, and the configuration they approved."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.changes.choices import ChangeState


class ChangeRequest(models.Model):
    """A change to who approves or how (a board role, a looser policy, a signing key,
    password sign-in) waiting for a second portal admin.

    `before` and `after` are the exact states the change moves between; it takes
    effect only when someone other than the proposer and the people it is about
    approves it, in the approval's transaction. `subject_user_ids` are those people.
    Actors are kept as ledger references ("user:7", "system:operator:alice").
    """

    kind = models.CharField(max_length=64)
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=128)
    summary = models.CharField(max_length=300)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    subject_user_ids = models.JSONField(default=list)
    state = models.CharField(
        max_length=16, choices=ChangeState.choices, default=ChangeState.PENDING
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_by_actor = models.CharField(max_length=100)
    proposal_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_actor = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.CharField(max_length=1000, blank=True)
    break_glass = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_id"],
                condition=Q(state="pending"),
                name="one_pending_change_per_subject",
                violation_error_message="A change of this is already waiting for a decision.",
            )
        ]
        indexes = [models.Index(fields=["state", "expires_at"], name="change_state_expiry_idx")]

    def __str__(self) -> str:
        return f"change #{self.pk}: {self.summary}"

    @property
    def is_pending(self) -> bool:
        return self.state == ChangeState.PENDING

    @property
    def proposer_display(self) -> str:
        return self.proposed_by.email if self.proposed_by else self.proposed_by_actor


class ApprovedConfiguration(models.Model):
    """The last approved value of a security setting read from the environment
    (signing keys, password sign-in): what the portal acts on until a second admin
    approves a different value."""

    name = models.CharField(max_length=64, unique=True)
    value = models.JSONField()
    approved_at = models.DateTimeField(default=timezone.now)
    change = models.ForeignKey(
        ChangeRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.name

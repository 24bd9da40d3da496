from django.db import models

from portal.audit.models import AuditEvent


class RefusalWindow(models.Model):
    """Refusals of one kind from one source within one time window, counted.

    A refused request (a push without Google's token, a person trying an action their
    roles do not allow) is a security event, but writing one ledger row per refusal
    would let anyone grow the permanent ledger at will. So the first refusal of a
    (kind, source, window) writes one audit event carrying that occurrence's details
    (`event`), and every later one in the window only increments `count` here.
    """

    kind = models.CharField(max_length=80)
    source = models.CharField(max_length=80, help_text="user:<id>, token:<prefix> or ip:<address>")
    window_start = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    event = models.OneToOneField(
        AuditEvent,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refusal_window",
        help_text="The audit event written for the window's first refusal.",
    )

    class Meta:
        ordering = ["-window_start", "kind", "source"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "source", "window_start"],
                name="security_refusal_window_unique",
                violation_error_message="This window is already being counted.",
            )
        ]
        indexes = [models.Index(fields=["-last_seen_at"], name="security_refusal_recent_idx")]

    def __str__(self) -> str:
        return f"{self.kind} from {self.source} at {self.window_start:%Y-%m-%d %H:%M}: {self.count}"

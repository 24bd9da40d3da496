import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.audit.actors import Actor
from portal.audit.choices import ActorType


def token_hash(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash is enough: there is nothing to
    # brute-force that a slow hash would protect.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(models.Model):
    """A machine credential. Only the hash of the secret is stored; the secret is shown once.

    The public `prefix` identifies the token in lists and in the audit trail.
    """

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens"
    )
    scopes = models.JSONField(default=list)
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired else "active"

    def has_scopes(self, required: set[str]) -> bool:
        return required.issubset(set(self.scopes))

    def audit_actor(self) -> Actor:
        return Actor(ActorType.TOKEN, self.prefix)

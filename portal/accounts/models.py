from functools import cached_property

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.accounts.choices import BOARD_ROLES, Role
from portal.accounts.identifiers import email_normalise
from portal.audit.actors import Actor
from portal.audit.choices import ActorType


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> "User":
        if not email:
            raise ValueError("an e-mail address is required")
        user = self.model(email=email_normalise(email), **extra)
        user.set_password(password)  # None gives an unusable password (SSO-only users)
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, username: str | None) -> "User":
        # The login is case-insensitive: addresses are stored normalised.
        return self.get(email=email_normalise(username or ""))

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> "User":
        # A superuser would be made outside the four-eyes path and the audit trail;
        # portal admins are granted through `governance_change` (see createsuperuser).
        raise PermissionError(
            "superusers are not made on this portal: grant the portal_admin role with "
            "`manage.py governance_change grant-role` (audited, four eyes)"
        )


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in to the portal; the e-mail address is the login.

    What a person may do comes from their active RoleGrants, not from Django's
    permissions: `is_superuser` and `is_staff` grant nothing, the Django admin included
    (portal.admin_readonly).
    """

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    # A machine account owns API tokens (CI pipelines): it is no person, is listed
    # apart from people and never signs in.
    is_machine = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.full_name or self.email

    @cached_property
    def roles(self) -> frozenset[str]:
        """The roles this user holds now (cached for the request)."""
        if not self.pk:
            return frozenset()
        # Read with the user when a query prefetched the active grants (token lookups).
        prefetched = self.__dict__.get("active_grants")
        if prefetched is not None:
            return frozenset(grant.role for grant in prefetched)
        return frozenset(
            self.role_grants.filter(revoked_at__isnull=True).values_list("role", flat=True)
        )

    def check_password(self, raw_password: str | None) -> bool:
        # A machine account never signs in with a password, whatever is stored.
        if self.is_machine:
            return False
        return super().check_password(raw_password)

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def board_roles(self) -> frozenset[str]:
        return self.roles & BOARD_ROLES

    @property
    def role_labels(self) -> list[str]:
        return [Role(role).label for role in sorted(self.roles)]

    def audit_actor(self) -> Actor:
        return Actor(ActorType.USER, str(self.pk))


class RoleGrant(models.Model):
    """A role held by a user, from its grant until its revocation.

    Revoking keeps the row (with who and when), so the table is the history of who
    held which role; one active grant per (user, role).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants"
    )
    role = models.CharField(max_length=32, choices=Role.choices)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(default=timezone.now)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["role"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(revoked_at__isnull=True),
                name="one_active_grant_per_role",
                violation_error_message="This user already holds this role.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.get_role_display()}"

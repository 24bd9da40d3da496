"""Writes for accounts and roles. Each one records itself in the audit ledger."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal.accounts.choices import Role
from portal.accounts.identifiers import email_normalise, validate_email_address
from portal.accounts.models import RoleGrant, User
from portal.audit.actors import Actor
from portal.audit.services import audit_record


def user_create(
    *,
    email: str,
    full_name: str = "",
    password: str | None = None,
    actor: Actor,
    client_ip: str | None = None,
    source: str = "portal",
    machine: bool = False,
) -> User:
    """Create a user with no role. Side effects: audit `user.created`.

    The address is normalised and checked by the portal's one e-mail validator, so
    every way in (the Users page, SSO, the command line) stores the same form.
    `machine` makes an account that owns API tokens and never signs in.
    """
    email = email_normalise(email)
    try:
        validate_email_address(email)
    except ValidationError as exc:
        raise ValidationError({"email": exc.messages}) from exc
    with transaction.atomic():
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError({"email": "A user with this e-mail address already exists."})
        user = User.objects.create_user(
            email=email,
            password=None if machine else password,
            full_name=full_name,
            is_machine=machine,
        )
        payload: dict = {"source": source, "password_login": password is not None and not machine}
        if machine:
            payload["machine"] = True
        audit_record(
            action="user.created",
            actor=actor,
            object_type="user",
            object_id=user.pk,
            payload=payload,
            client_ip=client_ip,
        )
    return user


def role_grant(
    *, user: User, role: str, granted_by: User | None, client_ip: str | None = None
) -> RoleGrant:
    """Give `user` the role. Side effects: audit `role.granted`."""
    role = Role(role)
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        if RoleGrant.objects.filter(user=user, role=role, revoked_at__isnull=True).exists():
            raise ValidationError({"role": f"{user} already holds the role {role.label}."})
        grant = RoleGrant.objects.create(user=user, role=role, granted_by=granted_by)
        audit_record(
            action="role.granted",
            actor=granted_by.audit_actor() if granted_by else Actor.system("operator"),
            object_type="user",
            object_id=user.pk,
            payload={"role": role.value, "grant": grant.pk},
            client_ip=client_ip,
        )
    user.__dict__.pop("roles", None)
    user.__dict__.pop("active_grants", None)
    return grant


def role_revoke(
    *, user: User, role: str, revoked_by: User | None, client_ip: str | None = None
) -> RoleGrant:
    """End the user's active grant of the role. Side effects: audit `role.revoked`.

    Refuses to remove the last portal admin, which would lock everyone out of role
    management.
    """
    role = Role(role)
    with transaction.atomic():
        # Lock every active admin grant so two admins revoking each other at once
        # cannot both succeed and leave nobody.
        admin_grants = list(
            RoleGrant.objects.select_for_update().filter(
                role=Role.PORTAL_ADMIN, revoked_at__isnull=True
            )
        )
        grant = (
            RoleGrant.objects.select_for_update()
            .filter(user=user, role=role, revoked_at__isnull=True)
            .first()
        )
        if grant is None:
            raise ValidationError({"role": f"{user} does not hold the role {role.label}."})
        if role == Role.PORTAL_ADMIN and len(admin_grants) <= 1:
            raise ValidationError({"role": "The last portal admin cannot be removed."})
        grant.revoked_at = timezone.now()
        grant.revoked_by = revoked_by
        grant.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(
            action="role.revoked",
            actor=revoked_by.audit_actor() if revoked_by else Actor.system("operator"),
            object_type="user",
            object_id=user.pk,
            payload={"role": role.value, "grant": grant.pk},
            client_ip=client_ip,
        )
    user.__dict__.pop("roles", None)
    user.__dict__.pop("active_grants", None)
    return grant


def user_set_active(
    *, user: User, active: bool, changed_by: User, client_ip: str | None = None
) -> User:
    """Switch a user's access on or off. Side effects: audit `user.activated`/`deactivated`."""
    if user.pk == changed_by.pk and not active:
        raise ValidationError({"active": "You cannot deactivate yourself."})
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        audit_record(
            action="user.activated" if active else "user.deactivated",
            actor=changed_by.audit_actor(),
            object_type="user",
            object_id=user.pk,
            client_ip=client_ip,
        )
    return user

"""Writes for accounts and roles. Each one records itself in the audit ledger.

Granting a board role or portal admin needs two people: `role_grant` records a pending
change request (portal.changes) and the grant happens when another portal admin, not
the person it is about, approves it. Revoking only takes power away, so it applies at
once. Admins never choose a password for anyone: a person they add gets a one-time
set-password link by e-mail.
"""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from portal.accounts.choices import FOUR_EYES_ROLES, Role
from portal.accounts.identifiers import email_normalise, validate_email_address
from portal.accounts.models import RoleGrant, User
from portal.accounts.passwords import PASSWORD_MAX_LENGTH
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.changes.configuration import password_login_allowed
from portal.changes.models import ChangeRequest
from portal.changes.registry import ChangeKind, change_kind_register
from portal.changes.services import actor_ref, change_propose, governance_event_publish
from portal.notify.choices import EventType

ROLE_GRANT_KIND = "accounts.role_grant"


def user_create(
    *,
    email: str,
    full_name: str = "",
    actor: Actor,
    client_ip: str | None = None,
    source: str = "portal",
    machine: bool = False,
    send_set_password_link: bool = False,
    reason: str = "",
) -> User:
    """Create a user with no role and no usable password. Side effects: audit
    `user.created`; after commit, the e-mail below.

    The address is normalised and checked by the portal's one e-mail validator, so
    every way in (the Users page, SSO, the command line) stores the same form.
    `machine` makes an account that owns API tokens and never signs in. With
    `send_set_password_link` (an admin adding a person) and password sign-in on, the
    person is e-mailed a one-time link to choose their own password. `reason` (an
    operator's, on the command line) is kept in the event.
    """
    email = email_normalise(email)
    try:
        validate_email_address(email)
    except ValidationError as exc:
        raise ValidationError({"email": exc.messages}) from exc
    name_max = User._meta.get_field("full_name").max_length
    if len(full_name) > name_max:
        raise ValidationError({"full_name": f"A full name is at most {name_max} characters."})
    with transaction.atomic():
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError({"email": "A user with this e-mail address already exists."})
        user = User.objects.create_user(
            email=email, password=None, full_name=full_name, is_machine=machine
        )
        link = send_set_password_link and not machine and _password_login_allowed()
        payload: dict = {"source": source, "set_password_link": link}
        if machine:
            payload["machine"] = True
        if reason:
            payload["reason"] = reason[:500]
        audit_record(
            action="user.created",
            actor=actor,
            object_type="user",
            object_id=user.pk,
            payload=payload,
            client_ip=client_ip,
        )
        if link:
            _set_password_link_send_on_commit(user)
    return user


def _password_login_allowed() -> bool:
    return password_login_allowed()


def set_password_url(user: User) -> str:
    """A one-time link to choose a password: Django's password reset token, which stops
    working once the password is set (or after SET_PASSWORD_LINK_HOURS)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("accounts:set_password", kwargs={"uidb64": uid, "token": token})
    return settings.PORTAL_BASE_URL + path


def _set_password_link_send_on_commit(user: User) -> None:
    # Sent straight to the person, not through the notification outbox: the outbox
    # keeps bodies in a table admins can read, and whoever holds the link can sign in
    # as the person.
    def send() -> None:
        send_mail(
            subject="[Governance portal] Choose your password",
            message=(
                f"An account was created for you on the governance portal ({user.email}).\n\n"
                f"Choose your password here (the link works once, for "
                f"{settings.SET_PASSWORD_LINK_HOURS} hours):\n{set_password_url(user)}\n"
            ),
            from_email=None,
            recipient_list=[user.email],
        )

    transaction.on_commit(send, robust=True)


def user_set_password_link_send(*, user: User, actor: Actor, client_ip: str | None = None) -> None:
    """E-mail `user` a fresh set-password link (admins: "send a new link"). Refused when
    password sign-in is off. Side effects: audit `user.set_password_link_sent`; the
    e-mail after commit."""
    if not _password_login_allowed():
        # A list of messages, as message_dict gives anyway: bandit reads a bare string
        # under a "password" key as a hard-coded credential (B105).
        raise ValidationError(
            {"password": ["Password sign-in is off: people sign in with Google."]}
        )
    with transaction.atomic():
        audit_record(
            action="user.set_password_link_sent",
            actor=actor,
            object_type="user",
            object_id=user.pk,
            client_ip=client_ip,
        )
        _set_password_link_send_on_commit(user)


def user_password_set_by_operator(*, user: User, password: str, operator: str) -> None:
    """An operator on the server sets a password (the demo's logins). Refuses a
    password longer than PASSWORD_MAX_LENGTH (ValidationError on `password`). Side
    effects: audit `user.password_set_by_operator`."""
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValidationError(
            {"password": f"A password has at most {PASSWORD_MAX_LENGTH} characters."}
        )
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_record(
            action="user.password_set_by_operator",
            actor=Actor.system(f"operator:{operator}"),
            object_type="user",
            object_id=user.pk,
        )


def _role_subject_id(user: User, role: str) -> str:
    return f"{user.pk}/{role}"


def _board_told(*, user: User, role: Role, gained: bool, actor: Actor, event_id: str) -> None:
    verb = "now holds" if gained else "no longer holds"
    governance_event_publish(
        event_type=EventType.GOVERNANCE_CHANGED,
        event_id=event_id,
        summary=f"{user} {verb} the role {role.label}",
        payload={
            "user": user.pk,
            "role": role.value,
            "gained": gained,
            "url": settings.PORTAL_BASE_URL + reverse("accounts:user_detail", args=[user.pk]),
        },
        actor=actor,
    )


def role_grant(
    *,
    user: User,
    role: str,
    granted_by: User | None,
    client_ip: str | None = None,
    actor: Actor | None = None,
    reason: str = "",
) -> RoleGrant | ChangeRequest:
    """Give `user` the role, or, for a board role or portal admin, propose it.

    `granted_by` is the admin asking (None: an operator, named by `actor`). Roles in
    FOUR_EYES_ROLES return a pending ChangeRequest and change nothing yet (see
    portal.changes.services.change_propose for its side effects); other roles are
    granted now. Side effects: audit `role.granted`.
    """
    role = Role(role)
    actor = actor or (granted_by.audit_actor() if granted_by else Actor.system("operator"))
    if RoleGrant.objects.filter(user=user, role=role, revoked_at__isnull=True).exists():
        raise ValidationError({"role": f"{user} already holds the role {role.label}."})
    if role in FOUR_EYES_ROLES:
        return change_propose(
            kind=ROLE_GRANT_KIND,
            subject_type="user",
            subject_id=_role_subject_id(user, role),
            summary=f"Grant {role.label} to {user.email}",
            before={"user": user.pk, "role": role.value, "holds": False},
            after={"user": user.pk, "role": role.value, "holds": True},
            subject_user_ids=[user.pk],
            proposed_by=granted_by,
            actor=actor,
            reason=reason,
            client_ip=client_ip,
        )
    return _role_grant_apply(
        user=user, role=role, granted_by=granted_by, actor=actor, client_ip=client_ip
    )


def _role_grant_apply(
    *,
    user: User,
    role: Role,
    granted_by: User | None,
    actor: Actor,
    client_ip: str | None = None,
    change: ChangeRequest | None = None,
) -> RoleGrant:
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        if RoleGrant.objects.filter(user=user, role=role, revoked_at__isnull=True).exists():
            raise ValidationError({"role": f"{user} already holds the role {role.label}."})
        grant = RoleGrant.objects.create(user=user, role=role, granted_by=granted_by)
        payload: dict = {"role": role.value, "grant": grant.pk}
        if change is not None:
            payload.update(
                change=change.pk, proposed_by=change.proposed_by_actor, approved_by=actor_ref(actor)
            )
        audit_record(
            action="role.granted",
            actor=actor,
            object_type="user",
            object_id=user.pk,
            payload=payload,
            client_ip=client_ip,
        )
        if role in FOUR_EYES_ROLES:
            _board_told(
                user=user, role=role, gained=True, actor=actor, event_id=f"role-grant-{grant.pk}"
            )
    user.__dict__.pop("roles", None)
    user.__dict__.pop("active_grants", None)
    return grant


def _role_grant_change_apply(*, change: ChangeRequest, actor: Actor) -> None:
    user = User.objects.get(pk=change.after["user"])
    approver = User.objects.filter(pk=actor.id).first() if actor.type == "user" else None
    _role_grant_apply(
        user=user, role=Role(change.after["role"]), granted_by=approver, actor=actor, change=change
    )


change_kind_register(
    ChangeKind(
        name=ROLE_GRANT_KIND, label="Board role or portal admin", apply=_role_grant_change_apply
    )
)


def role_revoke(
    *, user: User, role: str, revoked_by: User | None, client_ip: str | None = None
) -> RoleGrant:
    """End the user's active grant of the role, at once (it only takes power away).

    Refuses to remove the last portal admin, which would lock everyone out of role
    management. Side effects: audit `role.revoked`; for a board role or portal admin,
    an e-mail to the board and the admins.
    """
    role = Role(role)
    actor = revoked_by.audit_actor() if revoked_by else Actor.system("operator")
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
            actor=actor,
            object_type="user",
            object_id=user.pk,
            payload={"role": role.value, "grant": grant.pk},
            client_ip=client_ip,
        )
        if role in FOUR_EYES_ROLES:
            _board_told(
                user=user, role=role, gained=False, actor=actor, event_id=f"role-revoke-{grant.pk}"
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

"""Writes for API tokens. Each one records itself in the audit ledger."""

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from portal.accounts.models import RoleGrant, User
from portal.apitokens.models import ApiToken, token_hash
from portal.apitokens.scopes import scopes_allowed_for, scopes_in_use
from portal.audit.actors import Actor
from portal.audit.services import audit_record

TOKEN_PREFIX = "gp_"  # noqa: S105  # nosec B105  # a public marker, not a secret


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def apitoken_create(
    *,
    name: str,
    owner: User,
    scopes: list[str],
    expires_at: datetime | None,
    actor: Actor,
    client_ip: str | None = None,
) -> IssuedToken:
    """Issue a token. Side effects: audit `apitoken.created` (without the secret).

    Refuses (ValidationError naming the field) an empty or over-long name, scopes no
    endpoint uses and scopes the owner's roles do not allow now (the same roles their
    own session would need for the endpoints of that scope), an expiry in the past.
    """
    unknown = sorted(set(scopes) - set(scopes_in_use()))
    beyond_owner = sorted(set(scopes) - set(unknown) - set(scopes_allowed_for(owner.roles)))
    errors: dict[str, str] = {}
    name_max = ApiToken._meta.get_field("name").max_length
    if not name.strip():
        errors["name"] = "A token needs a name."
    elif len(name.strip()) > name_max:
        errors["name"] = f"A token's name is at most {name_max} characters."
    if not scopes:
        errors["scopes"] = "Choose at least one scope."
    elif unknown:
        errors["scopes"] = f"Unknown scopes: {', '.join(unknown)}."
    elif beyond_owner:
        errors["scopes"] = (
            f"The owner's roles do not allow: {', '.join(beyond_owner)}. "
            "A token can do only what its owner may do."
        )
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "The expiry must be in the future."
    if errors:
        raise ValidationError(errors)
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=name.strip(),
            owner=owner,
            scopes=sorted(set(scopes)),
            prefix=prefix,
            secret_hash=token_hash(secret),
            expires_at=expires_at,
        )
        audit_record(
            action="apitoken.created",
            actor=actor,
            object_type="apitoken",
            object_id=token.prefix,
            payload={
                "name": token.name,
                "owner": token.owner_id,
                "scopes": token.scopes,
                "expires_at": expires_at,
            },
            client_ip=client_ip,
        )
    return IssuedToken(token=token, secret=secret)


def apitoken_revoke(*, token: ApiToken, actor: Actor, client_ip: str | None = None) -> ApiToken:
    """Revoke a token at once. Side effects: audit `apitoken.revoked`."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            # A list of messages, as message_dict gives it anyway; a bare string under a
            # "token" key reads to bandit as a hard-coded credential (B105).
            raise ValidationError({"token": ["This token is already revoked."]})
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            action="apitoken.revoked",
            actor=actor,
            object_type="apitoken",
            object_id=token.prefix,
            client_ip=client_ip,
        )
    return token


def _tokens_with_owner_roles() -> QuerySet[ApiToken]:
    """Tokens with their owner and the owner's current roles, in one query on
    PostgreSQL (an array subquery); elsewhere the roles come in a second one."""
    tokens = ApiToken.objects.select_related("owner")
    if connection.vendor == "postgresql":
        roles = (
            RoleGrant.objects.filter(user_id=OuterRef("owner_id"), revoked_at__isnull=True)
            .values("user_id")
            .annotate(roles=ArrayAgg("role"))
            .values("roles")
        )
        return tokens.annotate(owner_roles=Subquery(roles))
    return tokens.prefetch_related(
        Prefetch(
            "owner__role_grants",
            queryset=RoleGrant.objects.filter(revoked_at__isnull=True),
            to_attr="active_grants",
        )
    )


def apitoken_authenticate(*, presented: str) -> ApiToken | None:
    """The active token matching a presented secret, or None. Updates last-used time.

    The owner comes with the token, and the owner's current roles with them (read once
    here, checked by the permission on every request); a deactivated owner's tokens
    authenticate nothing.
    """
    if not presented.startswith(TOKEN_PREFIX):
        return None
    token = _tokens_with_owner_roles().filter(secret_hash=token_hash(presented)).first()
    if token is None or not token.is_active or not token.owner.is_active:
        return None
    if connection.vendor == "postgresql":
        # Read in the token's own query: the owner's `roles` for this request.
        token.owner.__dict__["roles"] = frozenset(token.owner_roles or ())
    now = timezone.now()
    # Write at most once a minute per token: busy CI must not turn reads into writes.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token

"""Reads for accounts and roles."""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from portal.accounts.models import RoleGrant, User


def users_list(*, search: str = "", role: str = "", machines: bool = False) -> QuerySet[User]:
    """People (or, with `machines`, the machine accounts that own API tokens)."""
    users = User.objects.filter(is_machine=machines).prefetch_related(
        Prefetch(
            "role_grants",
            queryset=RoleGrant.objects.filter(revoked_at__isnull=True),
            to_attr="active_grants",
        )
    )
    if search:
        users = users.filter(Q(email__icontains=search) | Q(full_name__icontains=search))
    if role:
        users = users.filter(role_grants__role=role, role_grants__revoked_at__isnull=True)
    return users.order_by("email").distinct()


def users_with_role(*, role: str) -> QuerySet[User]:
    return User.objects.filter(
        is_active=True,
        is_machine=False,
        role_grants__role=role,
        role_grants__revoked_at__isnull=True,
    ).distinct()


def role_held_since(
    *, holdings: Iterable[tuple[int, str, datetime]]
) -> dict[tuple[int, str, datetime], datetime | None]:
    """For each (user id, role, moment): since when the user held that role without a
    break at that moment (the grant in force then), or None if they did not. One query."""
    holdings = list(holdings)
    grants = RoleGrant.objects.filter(user_id__in={user_id for user_id, _, _ in holdings}).only(
        "user_id", "role", "granted_at", "revoked_at"
    )
    by_person: dict[tuple[int, str], list[RoleGrant]] = {}
    for grant in grants:
        by_person.setdefault((grant.user_id, grant.role), []).append(grant)
    answer: dict[tuple[int, str, datetime], datetime | None] = {}
    for user_id, role, moment in holdings:
        in_force = [
            grant.granted_at
            for grant in by_person.get((user_id, role), [])
            if grant.granted_at <= moment
            and (grant.revoked_at is None or grant.revoked_at > moment)
        ]
        answer[(user_id, role, moment)] = max(in_force) if in_force else None
    return answer

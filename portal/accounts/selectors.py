"""Reads for accounts and roles."""

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

"""Who may see and drive rollouts, in one place."""

from typing import Any

from governance.permissions import may_read_registry
from portal.accounts.choices import Role

# DevOps ships; portal admins may act for them.
ROLLOUT_OPERATORS: tuple[str, ...] = (Role.DEVOPS, Role.PORTAL_ADMIN)


def may_read_rollouts(user: Any) -> bool:
    return may_read_registry(user)


def may_operate_rollouts(user: Any) -> bool:
    """Start, promote, pause, abort and roll back."""
    return bool(user.is_authenticated and user.has_role(*ROLLOUT_OPERATORS))


def may_set_canary_thresholds(user: Any) -> bool:
    """The canary analysis thresholds of each target: DevOps and data science leads."""
    return bool(
        user.is_authenticated
        and user.has_role(Role.DEVOPS, Role.DATA_SCIENCE_LEAD, Role.PORTAL_ADMIN)
    )

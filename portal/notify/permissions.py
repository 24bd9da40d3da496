"""Who may manage outbound notifications."""

from typing import Any

from portal.accounts.choices import Role


def may_manage_webhooks(user: Any) -> bool:
    return user.is_authenticated and user.has_role(Role.PORTAL_ADMIN)

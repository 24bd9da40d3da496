"""Who may do what with data subject requests, in one place.

Privacy officers handle requests; auditors read everything and change nothing; portal
admins manage data sources. The public request forms need no sign-in at all.
"""

from typing import Any

from portal.accounts.choices import Role

REQUEST_READERS: tuple[str, ...] = (Role.PRIVACY_OFFICER, Role.AUDITOR, Role.PORTAL_ADMIN)
REQUEST_HANDLERS: tuple[str, ...] = (Role.PRIVACY_OFFICER,)


def may_read_requests(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*REQUEST_READERS))


def may_handle_requests(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(*REQUEST_HANDLERS))


def may_manage_sources(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_role(Role.PORTAL_ADMIN))

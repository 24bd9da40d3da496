"""Who may do what in the base of the portal, in one place."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from portal.accounts.choices import Role


def may_manage_roles(user: Any) -> bool:
    return user.is_authenticated and user.has_role(Role.PORTAL_ADMIN)


def may_read_audit(user: Any) -> bool:
    return user.is_authenticated and user.has_role(Role.AUDITOR, Role.PORTAL_ADMIN)


def may_manage_tokens(user: Any) -> bool:
    return user.is_authenticated and user.has_role(Role.PORTAL_ADMIN, Role.DEVOPS)


def may_manage_all_tokens(user: Any) -> bool:
    return user.is_authenticated and user.has_role(Role.PORTAL_ADMIN)


def user_passes(check: Callable[[Any], bool]) -> Callable:
    """Decorator: signed-in users failing `check` get the 403 page; others sign in first."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied("Your roles do not allow this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator

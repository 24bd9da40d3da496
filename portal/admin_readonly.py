"""The Django admin only shows, and only to the portal's own roles.

Every change goes through the portal, where it is audited. Third-party apps register
admins that edit state (django-celery-beat's periodic tasks and schedules, social-auth's
identity links, Django's groups, django-axes' lockout records); none of those edits
would reach the audit ledger. The project's URL map calls `admin_site_read_only` once
every app has registered its admins, and every registered ModelAdmin becomes a read-only
subclass of itself: no add, change or delete, no bulk actions (beat's "run task",
"enable"), whoever asks — superusers included; nor its password form, which would
change the signed-in person's password without an audit event.

Who may look is decided by the portal's roles, never by Django's `is_superuser` or
`is_staff` flags (those are set outside the four-eyes path, by `createsuperuser` or a
database shell, and leave no audit event): a portal admin reads every model, an auditor
reads the audit ledger's models, and anyone else (a role-less superuser included) is
refused with 403, which the refusal middleware counts.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from portal.accounts.choices import Role

# Which roles may read which app's models in the admin; any app not listed: portal admins.
ADMIN_READERS: dict[str, frozenset[str]] = {
    "audit": frozenset({Role.AUDITOR, Role.PORTAL_ADMIN}),
}
DEFAULT_ADMIN_READERS = frozenset({Role.PORTAL_ADMIN})
ANY_ADMIN_READER = frozenset().union(DEFAULT_ADMIN_READERS, *ADMIN_READERS.values())


def admin_may_read(user: Any, app_label: str | None = None) -> bool:
    """Whether `user` may open the Django admin (`app_label` None) or read that app's
    models there. Roles only: is_superuser and is_staff count for nothing."""
    if not (user.is_authenticated and user.is_active) or getattr(user, "is_machine", False):
        return False
    readers = ANY_ADMIN_READER if app_label is None else ADMIN_READERS.get(app_label)
    return user.has_role(*(readers or DEFAULT_ADMIN_READERS))


class ReadOnlyAdminMixin:
    """Refuses every write the admin offers; viewing needs the portal role for the app."""

    read_only_admin = True

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_may_read(request.user, self.opts.app_label)  # type: ignore[attr-defined]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return admin_may_read(request.user, self.opts.app_label)  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        return {}


def _site_has_permission(request: HttpRequest) -> bool:
    return admin_may_read(request.user)


def _login_refusing_the_role_less(login: Callable[..., HttpResponse]) -> Callable:
    # The admin's own login page would answer a signed-in person without the role with
    # a 200 "you are not authorised" form; here they get the portal's 403 (counted).
    @wraps(login)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not admin_may_read(request.user):
            raise PermissionDenied("The Django admin is open to portal admins and auditors.")
        return login(request, *args, **kwargs)

    return wrapped


def _admin_view_refusing_the_role_less(site: admin.AdminSite) -> Callable[..., Callable]:
    # The admin sends a signed-in person it refuses back to its login page (302); here
    # they get the 403 at once, on every admin page.
    admin_view = site.admin_view

    def wrap(view: Callable[..., HttpResponse], cacheable: bool = False) -> Callable:
        inner = admin_view(view, cacheable)

        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.user.is_authenticated and not admin_may_read(request.user):
                raise PermissionDenied("The Django admin is open to portal admins and auditors.")
            return inner(request, *args, **kwargs)

        return wrapped

    return wrap


def _password_change_refused(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    # The admin's own form would change the signed-in person's password with no audit
    # event; passwords are set only through the portal's one-time link.
    raise PermissionDenied(
        "Passwords are not changed in the Django admin: ask a portal admin for a set-password link."
    )


def admin_site_read_only(site: admin.AdminSite) -> None:
    """Swap every registered ModelAdmin for a read-only subclass of itself and make the
    site ask for the portal's roles (idempotent). Signing in goes through the portal's
    own login (rate-limited, SSO-aware)."""
    if not getattr(site, "portal_roles_required", False):
        site.has_permission = _site_has_permission  # type: ignore[method-assign]
        site.login = _login_refusing_the_role_less(site.login)  # type: ignore[method-assign]
        site.admin_view = _admin_view_refusing_the_role_less(site)  # type: ignore[method-assign]
        site.password_change = _password_change_refused  # type: ignore[method-assign]
        site.password_change_done = _password_change_refused  # type: ignore[method-assign]
        site.portal_roles_required = True  # type: ignore[attr-defined]
    for model, model_admin in list(site._registry.items()):
        admin_class = type(model_admin)
        if getattr(admin_class, "read_only_admin", False):
            continue
        read_only = type(f"ReadOnly{admin_class.__name__}", (ReadOnlyAdminMixin, admin_class), {})
        site.unregister(model)
        site.register(model, read_only)

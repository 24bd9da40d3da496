"""The Django admin only shows: every change goes through the portal, where it is audited.

Third-party apps register admins that edit state (django-celery-beat's periodic tasks
and schedules, social-auth's identity links, Django's groups, django-axes' lockout
records); none of those edits would reach the audit ledger. The project's URL map calls
`admin_site_read_only` once every app has registered its admins, and every registered
ModelAdmin becomes a read-only subclass of itself: no add, change or delete, no bulk
actions (beat's "run task", "enable"), whoever asks — superusers included.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """Refuses every write the admin offers; viewing stays as the admin defines it."""

    read_only_admin = True

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        return {}


def admin_site_read_only(site: admin.AdminSite) -> None:
    """Swap every registered ModelAdmin for a read-only subclass of itself (idempotent)."""
    for model, model_admin in list(site._registry.items()):
        admin_class = type(model_admin)
        if getattr(admin_class, "read_only_admin", False):
            continue
        read_only = type(f"ReadOnly{admin_class.__name__}", (ReadOnlyAdminMixin, admin_class), {})
        site.unregister(model)
        site.register(model, read_only)

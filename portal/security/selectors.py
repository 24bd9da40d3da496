"""Reads of the security events."""

from django.db.models import QuerySet

from portal.security.models import RefusalWindow


def refusal_windows_list(*, kind: str = "", source: str = "") -> QuerySet[RefusalWindow]:
    """Refusal windows, most recent first, each with its audit event."""
    windows = RefusalWindow.objects.select_related("event").order_by("-last_seen_at", "-pk")
    if kind:
        windows = windows.filter(kind__startswith=kind)
    if source:
        windows = windows.filter(source=source)
    return windows

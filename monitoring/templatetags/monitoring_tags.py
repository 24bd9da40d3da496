from django import template

register = template.Library()


@register.filter
def lookup(mapping: dict, key: str):
    """`errors|lookup:metric`: a dict's value in a template, or an empty dict."""
    return (mapping or {}).get(key, {})


STATUS_BADGES = {
    "ok": ("badge-ok", "OK"),
    "warning": ("badge-warn", "Warning"),
    "critical": ("badge-danger", "Critical"),
    "unknown": ("badge-muted", "No data"),
}


@register.inclusion_tag("monitoring/_status.html")
def status_badge(status: str) -> dict:
    """A status (ok, warning, critical, unknown) as a coloured badge with its word."""
    css, label = STATUS_BADGES.get(status, STATUS_BADGES["unknown"])
    return {"css": css, "label": label, "status": status}

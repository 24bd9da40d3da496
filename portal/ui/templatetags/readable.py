"""Values as people read them: no Python reprs, sensible precision, names not slugs.

`{% load readable %}` then:

- `{{ value|readable }}`: any JSON value. Nothing (None) is "—", booleans "yes"/"no",
  integers with thousands separators (12,345), floats to 4 significant digits with the
  full value on hover, lists as "a, b, c", objects as "name: value; …". Never `None`,
  `True`, `['…']` or `{'…': …}`.
- `{{ value|significant:3 }}`: a number to `digits` significant digits, separators kept.
- `{{ value|ratio_percent }}`: a fraction (0.1234) as a percentage ("12.3%").
"""

from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from portal.accounts.choices import Role
from portal.ui.numbers import SIGNIFICANT, number_text

register = template.Library()

NOTHING = "—"
LINE_BREAK = SafeString("<br>")


def _number_html(value: float) -> SafeString:
    shown = number_text(value)
    exact = repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, float) and float(shown.replace(",", "")) != value:
        return format_html('<span title="{}">{}</span>', exact, shown)
    return format_html("{}", shown)


def _role_name(value: Any) -> str:
    return str(Role(value).label) if value in Role.values else str(value)


def _item_html(key: Any, value: Any) -> SafeString:
    # A role is named as people read it wherever a document keeps its slug: as a value,
    # or as the keys of a policy's required roles (role: how many approvals).
    if key == "role" and isinstance(value, str) and value in Role.values:
        return format_html("{}", Role(value).label)
    if key == "required_roles" and isinstance(value, dict) and value:
        return format_html_join(
            "; ", "{}: {}", ((_role_name(role), readable_html(n)) for role, n in value.items())
        )
    return readable_html(value)


def readable_html(value: Any) -> SafeString:
    """HTML for any JSON value, as the module doc says."""
    if value is None or value == "":
        return format_html("{}", NOTHING)
    if isinstance(value, bool):
        return format_html("{}", "yes" if value else "no")
    if isinstance(value, int | float):
        return _number_html(value)
    if isinstance(value, dict):
        if not value:
            return format_html("{}", NOTHING)
        return format_html_join(
            "; ", "{}: {}", ((str(key), _item_html(key, item)) for key, item in value.items())
        )
    if isinstance(value, list | tuple):
        if not value:
            return format_html("{}", NOTHING)
        nested = any(isinstance(item, dict) for item in value)
        separator = LINE_BREAK if nested else ", "
        return format_html_join(separator, "{}", ((readable_html(item),) for item in value))
    return format_html("{}", str(value))


@register.filter(name="readable")
def readable_filter(value: Any) -> SafeString:
    return readable_html(value)


@register.filter(name="significant")
def significant_filter(value: Any, digits: int = SIGNIFICANT) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NOTHING if value is None else str(value)
    return number_text(value, int(digits))


@register.filter(name="ratio_percent")
def ratio_percent_filter(value: Any, digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NOTHING if value is None else str(value)
    return f"{value * 100:,.{int(digits)}f}%"


@register.filter(name="readable_fields")
def readable_fields_filter(value: Any) -> SafeString:
    """An object as a definition list (name, then its readable value); anything else as
    `readable` gives it."""
    if not isinstance(value, dict) or not value:
        return readable_html(value)
    rows = format_html_join(
        "",
        "<dt>{}</dt><dd>{}</dd>",
        ((str(key), _item_html(key, item)) for key, item in value.items()),
    )
    return format_html('<dl class="facts">{}</dl>', rows)


@register.filter(name="role_label")
def role_label_filter(value: Any) -> str:
    """A role's slug as people read it: "data_science_lead" -> "Data science lead"."""
    return str(dict(Role.choices).get(value, value)) if value else NOTHING

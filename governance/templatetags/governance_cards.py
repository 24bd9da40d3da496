from django import template
from django.utils.safestring import SafeString

from governance.rendering import markdown_to_html

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    return markdown_to_html(text or "")


@register.filter(name="percent")
def percent_filter(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    return f"{value * 100:.{digits}f}%"


@register.filter(name="get_item")
def get_item(mapping: dict, key: str) -> object:
    return mapping.get(key) if isinstance(mapping, dict) else None

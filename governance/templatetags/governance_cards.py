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


@register.filter(name="slice_table")
def slice_table(values: object) -> dict:
    """One dimension's slices ({slice: {metric: value}}) as a table:
    {"columns": [metric names, in first-seen order], "rows": [(slice, [value or None])]}.
    Anything else gives an empty table."""
    if not isinstance(values, dict):
        return {"columns": [], "rows": []}
    columns: list[str] = []
    for metrics in values.values():
        for name in metrics if isinstance(metrics, dict) else ():
            if name not in columns:
                columns.append(name)
    rows = [
        (value, [metrics.get(n) if isinstance(metrics, dict) else None for n in columns])
        for value, metrics in values.items()
    ]
    return {"columns": columns, "rows": rows}

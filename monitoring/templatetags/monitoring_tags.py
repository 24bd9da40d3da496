from django import template

register = template.Library()


@register.filter
def lookup(mapping: dict, key: str):
    """`errors|lookup:metric`: a dict's value in a template, or an empty dict."""
    return (mapping or {}).get(key, {})

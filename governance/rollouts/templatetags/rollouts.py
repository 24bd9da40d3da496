"""Template filters of the rollout pages."""

from typing import Any

from django import template

register = template.Library()


@register.filter
def threshold(policy: Any, name: str) -> Any:
    """One threshold of a CanaryPolicy by field name."""
    return getattr(policy, name, "")

"""Template helpers for training runs: `{% if user|may_retrain:model %}`."""

from typing import Any

from django import template

from governance.training.permissions import may_start_run

register = template.Library()


@register.filter
def may_retrain(user: Any, model: Any) -> bool:
    return may_start_run(user, model)

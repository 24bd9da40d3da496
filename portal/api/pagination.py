"""Pagination for every API list: limit and offset, refused when malformed.

DRF's own LimitOffsetPagination silently falls back to its defaults on `limit=abc` or
`offset=-3`; a client that asked for something it did not get should be told, with the
portal's 400 error shape naming the parameter.
"""

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` (1 to max_limit) and `?offset=` (0 or more) as whole numbers, else a 400."""

    max_limit = 500

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        problems: dict[str, list[str]] = {}
        for name, minimum in ((self.limit_query_param, 1), (self.offset_query_param, 0)):
            raw = request.query_params.get(name)
            if raw is None:
                continue
            if not raw.isdigit() or int(raw) < minimum:
                problems[name] = [f"Must be a whole number of at least {minimum}."]
        if problems:
            raise ValidationError(problems)
        return super().paginate_queryset(queryset, request, view)

"""The API's JSON parser: a body is refused at parsing when it holds a value the
portal could not store or hash exactly (portal.jsonvalues), with each value's path."""

from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

from portal.jsonvalues import json_value_problems


class StoredJSONParser(JSONParser):
    """DRF's strict JSON parser (NaN and Infinity literals refused), plus:
    numbers that overflow to infinity (`1e999`), integers beyond a float's range, NUL
    and unpaired surrogates in text and documents nested too deeply are a 400 naming
    their path (`hyperparameters.layers[2]`), never a 500 further on."""

    strict = True

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        problems = json_value_problems(data)
        if problems:
            raise ValidationError(problems)
        return data

"""JSON the portal stores: which values it accepts, and the form they are kept in.

Two rules, one module, used by every place that stores, hashes or compares JSON:

- `json_value_problems` / `json_value_check`: a value the databases or the hashing
  cannot keep exactly is refused, named by its path (`metrics.mae`,
  `hyperparameters.layers[2]`). Numbers must be finite and within the range of a
  64-bit float (the portal compares metrics as floats; `float()` of a 400-digit
  integer raises OverflowError); text may not hold NUL (jsonb refuses `\\u0000`) or an
  unpaired surrogate (neither UTF-8 nor jsonb can hold one); documents are at most
  MAX_DEPTH levels deep and MAX_VALUES values large.
- `json_stored_form`: the value exactly as a JSON column gives it back. PostgreSQL's
  jsonb keeps numbers as `numeric`, so `-0.0` reads back as `0.0`, and a float Python
  writes with an exponent (`1e+300`, `1e+16`) reads back as the exact integer it
  denotes. SQLite keeps the text Python wrote. The stored form is the one both give
  back unchanged, so a digest or a comparison made before storing still holds after.
"""

import json
import math
import re
import sys
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder

MAX_DEPTH = 32
MAX_VALUES = 500_000
MAX_PROBLEMS = 20
FLOAT_MAX = sys.float_info.max
REPLACEMENT = "\ufffd"


# One search in C rather than a Python call per character: every stored text passes here.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "Text may not contain the NUL character (\\u0000)."
    if _SURROGATE.search(text):
        return "Text may not contain an unpaired surrogate (\\ud800 to \\udfff)."
    return None


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def json_value_problems(value: Any, *, path: str = "") -> dict[str, str]:
    """Every value in the document that cannot be stored as it is, by JSON path."""
    problems: dict[str, str] = {}
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    seen = 0
    while stack and len(problems) < MAX_PROBLEMS:
        item, where, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            problems[path or "non_field_errors"] = f"At most {MAX_VALUES} values in one document."
            break
        label = where or "non_field_errors"
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                problems[label] = "Must be a finite number (not NaN or infinity)."
        elif isinstance(item, int):
            if abs(item) > FLOAT_MAX:
                problems[label] = "A number beyond 1.8e308 cannot be stored or compared."
        elif isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                problems[label] = problem
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                problems[label] = f"Nested deeper than {MAX_DEPTH} levels."
                continue
            if isinstance(item, dict):
                children = []
                for key, child in item.items():
                    key_text = key if isinstance(key, str) else str(key)
                    child_path = _child_path(where, key_text)
                    problem = _text_problem(key_text)
                    if problem:
                        problems[child_path] = f"Name: {problem}"
                        continue
                    children.append((child, child_path, depth + 1))
            else:
                children = [
                    (child, _child_path(where, n), depth + 1) for n, child in enumerate(item)
                ]
            stack.extend(reversed(children))
        else:
            problems[label] = f"Not a JSON value ({type(item).__name__})."
    return dict(sorted(problems.items()))


def json_value_check(value: Any, *, path: str = "") -> None:
    """Raise ValidationError naming each value that cannot be stored (see module doc)."""
    problems = json_value_problems(value, path=path)
    if problems:
        raise ValidationError(problems)


def _stored_number(number: float) -> int | float:
    if not math.isfinite(number):
        raise ValueError(f"{number!r} cannot be stored in JSON")
    # jsonb's numeric reads back with the scale of the text Python wrote: no decimal
    # places (`1e+300`) comes back as an integer, and numeric has no negative zero.
    decimal = Decimal(repr(number))
    if decimal.as_tuple().exponent >= 0:  # type: ignore[operator]
        return int(decimal)
    return number if number != 0 else 0.0


def _stored_text(text: str) -> str:
    # Values that no check refused before (an internal payload): stored with the
    # character jsonb and UTF-8 accept in place of the one they refuse, so what is
    # hashed is what is kept.
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(REPLACEMENT, text)
    return text


def _stored(value: Any) -> Any:
    if isinstance(value, dict):
        return {_stored_text(key): _stored(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_stored(child) for child in value]
    if isinstance(value, str):
        return _stored_text(value)
    if isinstance(value, float):
        return _stored_number(value)
    return value


def json_stored_form(value: Any) -> Any:
    """`value` exactly as PostgreSQL jsonb and SQLite's JSON column give it back.

    Dates, times, UUIDs and decimals become strings (Django's encoder), keys strings,
    tuples lists; numbers and text as the module doc says. ValueError for NaN or
    infinity, which no JSON column holds. Idempotent: the stored form of a stored form
    is itself.
    """
    plain = json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False))
    return _stored(plain)

"""Numbers as people read them, for pages, diffs and exports meant for reading (the
JSON exports and the API keep the exact values)."""

import math

SIGNIFICANT = 4
# Where a fixed-point figure stops being readable and an exponent reads better.
SMALLEST_FIXED = 1e-4
LARGEST_FIXED = 1e15


def number_text(value: float, digits: int = SIGNIFICANT) -> str:
    """`value` to `digits` significant digits, with thousands separators, no trailing
    zeros: 0.123456 -> "0.1235", 12345.678 -> "12,346", 1e-7 -> "1e-07"; integers whole."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, int) and abs(value) < LARGEST_FIXED:
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < SMALLEST_FIXED or magnitude >= LARGEST_FIXED:
        return f"{value:.{digits}g}"
    decimals = max(digits - 1 - math.floor(math.log10(magnitude)), 0)
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text

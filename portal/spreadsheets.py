"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Excel, LibreOffice and Google Sheets evaluate a cell starting with `=`, `+`, `-`, `@`
(and a tab or carriage return before one) as a formula, so a name or an identifier
someone else chose (a Google profile name, a webhook's name) could run in the
auditor's or privacy officer's spreadsheet (OWASP "CSV injection"). Such a cell gets a
leading apostrophe, which spreadsheets hide and treat as "this is text".
"""

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """`value` unchanged unless it is text starting like a formula: then `'` + value.
    Numbers (negative ones included) stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value

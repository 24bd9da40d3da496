"""What a model card holds: its sections, which are required, and the shape of the
structured data some sections carry beside their Markdown text.

Section keys follow Google's Model Card Toolkit, plus the client's governance framework
(the data schema with personal-data flags and the fairness assessment).
"""

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError

from governance.choices import CardSectionKey
from portal.jsonvalues import json_stored_form, json_value_check


@dataclass(frozen=True)
class SectionSpec:
    key: str
    required: bool
    guidance: str
    # Filled by the portal from the version's metrics; people add narrative only.
    system_data: bool = False


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(
        CardSectionKey.MODEL_DETAILS,
        True,
        "What the model is and does; owners, licence, references.",
    ),
    SectionSpec(
        CardSectionKey.INTENDED_USE,
        True,
        "Who uses the predictions for what, and the uses that are out of scope.",
    ),
    SectionSpec(
        CardSectionKey.DATA_SCHEMA,
        True,
        "Each input field: type, source system, and whether it is personal data.",
    ),
    SectionSpec(
        CardSectionKey.TRAINING_DATA,
        True,
        "Dataset, data version, period covered, row count; preprocessing.",
    ),
    SectionSpec(
        CardSectionKey.EVALUATION_DATA,
        True,
        "The hold-out data the metrics were measured on.",
    ),
    SectionSpec(
        CardSectionKey.PERFORMANCE,
        True,
        "Metrics and slices come from the registration; add how to read them.",
        system_data=True,
    ),
    SectionSpec(
        CardSectionKey.LIMITATIONS,
        True,
        "Where the model is known to be wrong or weak.",
    ),
    SectionSpec(
        CardSectionKey.FAIRNESS_ASSESSMENT,
        True,
        "Groups compared, the metric, the result, and who assessed it.",
    ),
    SectionSpec(
        CardSectionKey.ETHICAL_CONSIDERATIONS,
        True,
        "Risks to people and how they are mitigated.",
    ),
    SectionSpec(
        CardSectionKey.CAVEATS_RECOMMENDATIONS,
        False,
        "Anything else a user of the predictions should know.",
    ),
)
SECTION_BY_KEY: dict[str, SectionSpec] = {spec.key: spec for spec in SECTIONS}
SECTION_ORDER: dict[str, int] = {spec.key: n for n, spec in enumerate(SECTIONS)}
REQUIRED_SECTIONS: tuple[str, ...] = tuple(str(spec.key) for spec in SECTIONS if spec.required)


def section_title(key: str) -> str:
    return str(CardSectionKey(key).label)


def _text(value: Any, field: str, errors: dict, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            errors[field] = "This field is required."
        return ""
    if not isinstance(value, str):
        errors[field] = "Must be text."
        return ""
    return value.strip()


def _date(value: Any, field: str, errors: dict) -> str:
    text = _text(value, field, errors)
    if text:
        try:
            date.fromisoformat(text)
        except ValueError:
            errors[field] = "Must be a date as YYYY-MM-DD."
    return text


def _rows(value: Any, field: str, errors: dict) -> list:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        errors[field] = "Must be a list of objects."
        return []
    return value


def _dataset(data: dict, errors: dict) -> dict:
    cleaned = {
        "dataset": _text(data.get("dataset"), "data.dataset", errors),
        "data_version": _text(data.get("data_version"), "data.data_version", errors),
        "period_start": _date(data.get("period_start"), "data.period_start", errors),
        "period_end": _date(data.get("period_end"), "data.period_end", errors),
        "row_count": None,
    }
    rows = data.get("row_count")
    if rows not in (None, ""):
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            errors["data.row_count"] = "Must be a whole number, 0 or more."
        else:
            cleaned["row_count"] = rows
    if (
        cleaned["period_start"]
        and cleaned["period_end"]
        and "data.period_start" not in errors
        and "data.period_end" not in errors
        and cleaned["period_end"] < cleaned["period_start"]
    ):
        errors["data.period_end"] = "The period cannot end before it starts."
    return {k: v for k, v in cleaned.items() if v not in ("", None)}


def section_data_clean(*, key: str, data: dict | None) -> dict:
    """Check and normalise a section's structured data; ValidationError names the field
    (`data.fields[2].type`). Sections without structured data accept none."""
    data = data or {}
    if not isinstance(data, dict):
        raise ValidationError({"data": "Must be an object."})
    json_value_check(data, path="data")
    errors: dict[str, str] = {}
    cleaned: dict[str, Any]
    if key == CardSectionKey.MODEL_DETAILS:
        owners = data.get("owners") or []
        references = data.get("references") or []
        if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
            errors["data.owners"] = "Must be a list of names or teams."
            owners = []
        if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
            errors["data.references"] = "Must be a list of links or citations."
            references = []
        cleaned = {
            "owners": [o.strip() for o in owners if o.strip()],
            "licence": _text(data.get("licence"), "data.licence", errors),
            "references": [r.strip() for r in references if r.strip()],
        }
        cleaned = {k: v for k, v in cleaned.items() if v}
    elif key == CardSectionKey.DATA_SCHEMA:
        fields = []
        for n, row in enumerate(_rows(data.get("fields"), "data.fields", errors)):
            where = f"data.fields[{n}]"
            personal = row.get("personal_data", False)
            if not isinstance(personal, bool):
                errors[f"{where}.personal_data"] = "Must be true or false."
            fields.append(
                {
                    "name": _text(row.get("name"), f"{where}.name", errors, required=True),
                    "type": _text(row.get("type"), f"{where}.type", errors, required=True),
                    "source": _text(row.get("source"), f"{where}.source", errors, required=True),
                    "personal_data": bool(personal),
                    "description": _text(row.get("description"), f"{where}.description", errors),
                }
            )
        names = [f["name"] for f in fields if f["name"]]
        if len(names) != len(set(names)):
            errors["data.fields"] = "Each input field may be listed once."
        cleaned = {"fields": fields} if fields else {}
    elif key in (CardSectionKey.TRAINING_DATA, CardSectionKey.EVALUATION_DATA):
        cleaned = _dataset(data, errors)
    elif key == CardSectionKey.FAIRNESS_ASSESSMENT:
        rows = []
        for n, row in enumerate(_rows(data.get("assessments"), "data.assessments", errors)):
            where = f"data.assessments[{n}]"
            rows.append(
                {
                    "groups": _text(row.get("groups"), f"{where}.groups", errors, required=True),
                    "metric": _text(row.get("metric"), f"{where}.metric", errors, required=True),
                    "result": _text(row.get("result"), f"{where}.result", errors, required=True),
                    "assessed_by": _text(
                        row.get("assessed_by"), f"{where}.assessed_by", errors, required=True
                    ),
                    "assessed_on": _date(row.get("assessed_on"), f"{where}.assessed_on", errors),
                }
            )
        cleaned = {"assessments": rows} if rows else {}
    elif key == CardSectionKey.PERFORMANCE:
        cleaned = data  # written by the portal from the version's metrics
    else:
        if data:
            errors["data"] = "This section takes Markdown text only."
        cleaned = {}
    if errors:
        raise ValidationError(errors)
    # The form the column gives back: an unchanged save compares equal to it.
    return json_stored_form(cleaned)

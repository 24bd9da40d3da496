"""HTML input for the registry and cards. Structured card data is typed as one row per
line with `|` between the columns, which keeps the editor a plain form."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator

from governance.cards_schema import SECTION_BY_KEY
from governance.choices import CardSectionKey, RiskTier
from governance.models import (
    CARD_SECTION_LIST_MAX_CHARS,
    CARD_SECTION_MAX_CHARS,
    MODEL_DESCRIPTION_MAX_CHARS,
    CardSection,
    ModelCard,
    RegisteredModel,
)
from portal.accounts.selectors import users_with_role

YES = {"yes", "y", "true", "1", "personal"}
NO = {"no", "n", "false", "0", ""}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _columns(line: str, count: int) -> list[str]:
    parts = [part.strip() for part in line.split("|")]
    return (parts + [""] * count)[:count] if len(parts) <= count else parts


class CardSectionForm(forms.Form):
    """One section: Markdown text, plus the structured fields that section has."""

    content = forms.CharField(
        label="Text (Markdown)",
        required=False,
        max_length=CARD_SECTION_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 12}),
    )
    comment = forms.CharField(
        label="What changed and why",
        required=False,
        max_length=300,
        help_text="Kept with the revision.",
    )

    def __init__(self, *args: Any, key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key
        self.fields["content"].help_text = SECTION_BY_KEY[key].guidance
        if key == CardSectionKey.MODEL_DETAILS:
            self.fields["owners"] = forms.CharField(
                max_length=CARD_SECTION_LIST_MAX_CHARS,
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
                help_text="One owner (person or team) per line.",
            )
            self.fields["licence"] = forms.CharField(required=False, max_length=200)
            self.fields["references"] = forms.CharField(
                max_length=CARD_SECTION_LIST_MAX_CHARS,
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
                help_text="One link or citation per line.",
            )
        elif key == CardSectionKey.DATA_SCHEMA:
            self.fields["fields"] = forms.CharField(
                max_length=CARD_SECTION_LIST_MAX_CHARS,
                label="Input fields",
                required=False,
                widget=forms.Textarea(attrs={"rows": 10}),
                help_text="One per line: name | type | source system | personal data (yes/no)"
                " | description",
            )
        elif key in (CardSectionKey.TRAINING_DATA, CardSectionKey.EVALUATION_DATA):
            self.fields["dataset"] = forms.CharField(required=False, max_length=200)
            self.fields["data_version"] = forms.CharField(required=False, max_length=200)
            self.fields["period_start"] = forms.DateField(
                required=False, widget=forms.DateInput(attrs={"type": "date"})
            )
            self.fields["period_end"] = forms.DateField(
                required=False, widget=forms.DateInput(attrs={"type": "date"})
            )
            self.fields["row_count"] = forms.IntegerField(required=False, min_value=0)
        elif key == CardSectionKey.FAIRNESS_ASSESSMENT:
            self.fields["assessments"] = forms.CharField(
                max_length=CARD_SECTION_LIST_MAX_CHARS,
                required=False,
                widget=forms.Textarea(attrs={"rows": 6}),
                help_text="One per line: groups compared | metric | result | assessed by"
                " | date (YYYY-MM-DD)",
            )

    @classmethod
    def initial_for(cls, section: CardSection) -> dict[str, Any]:
        data = section.data or {}
        initial: dict[str, Any] = {"content": section.content}
        if section.key == CardSectionKey.MODEL_DETAILS:
            initial["owners"] = "\n".join(data.get("owners", []))
            initial["licence"] = data.get("licence", "")
            initial["references"] = "\n".join(data.get("references", []))
        elif section.key == CardSectionKey.DATA_SCHEMA:
            initial["fields"] = "\n".join(
                " | ".join(
                    [
                        f.get("name", ""),
                        f.get("type", ""),
                        f.get("source", ""),
                        "yes" if f.get("personal_data") else "no",
                        f.get("description", ""),
                    ]
                ).rstrip(" |")
                for f in data.get("fields", [])
            )
        elif section.key in (CardSectionKey.TRAINING_DATA, CardSectionKey.EVALUATION_DATA):
            initial.update({k: data.get(k) for k in ("dataset", "data_version", "row_count")})
            initial["period_start"] = data.get("period_start")
            initial["period_end"] = data.get("period_end")
        elif section.key == CardSectionKey.FAIRNESS_ASSESSMENT:
            initial["assessments"] = "\n".join(
                " | ".join(
                    [
                        a.get("groups", ""),
                        a.get("metric", ""),
                        a.get("result", ""),
                        a.get("assessed_by", ""),
                        a.get("assessed_on", ""),
                    ]
                ).rstrip(" |")
                for a in data.get("assessments", [])
            )
        return initial

    def clean_fields_rows(self, text: str) -> list[dict]:
        rows = []
        for n, line in enumerate(_lines(text), start=1):
            cols = _columns(line, 5)
            if len(cols) > 5:
                raise ValidationError(f"Line {n}: at most 5 columns separated by |.")
            name, type_, source, personal, description = cols
            if personal.lower() not in YES | NO:
                raise ValidationError(f"Line {n}: personal data must be yes or no.")
            if not (name and type_ and source):
                raise ValidationError(f"Line {n}: name, type and source system are required.")
            rows.append(
                {
                    "name": name,
                    "type": type_,
                    "source": source,
                    "personal_data": personal.lower() in YES,
                    "description": description,
                }
            )
        return rows

    def clean_assessment_rows(self, text: str) -> list[dict]:
        rows = []
        for n, line in enumerate(_lines(text), start=1):
            cols = _columns(line, 5)
            if len(cols) > 5:
                raise ValidationError(f"Line {n}: at most 5 columns separated by |.")
            groups, metric, result, assessed_by, assessed_on = cols
            if not (groups and metric and result and assessed_by):
                raise ValidationError(
                    f"Line {n}: groups, metric, result and assessed by are required."
                )
            rows.append(
                {
                    "groups": groups,
                    "metric": metric,
                    "result": result,
                    "assessed_by": assessed_by,
                    "assessed_on": assessed_on,
                }
            )
        return rows

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "fields" in self.fields and "fields" in cleaned:
            try:
                cleaned["fields_rows"] = self.clean_fields_rows(cleaned["fields"])
            except ValidationError as exc:
                self.add_error("fields", exc)
        if "assessments" in self.fields and "assessments" in cleaned:
            try:
                cleaned["assessment_rows"] = self.clean_assessment_rows(cleaned["assessments"])
            except ValidationError as exc:
                self.add_error("assessments", exc)
        return cleaned

    def structured_data(self) -> dict | None:
        """The section's data as the service takes it; None for text-only sections."""
        c = self.cleaned_data
        if self.key == CardSectionKey.MODEL_DETAILS:
            return {
                "owners": _lines(c.get("owners", "")),
                "licence": c.get("licence", ""),
                "references": _lines(c.get("references", "")),
            }
        if self.key == CardSectionKey.DATA_SCHEMA:
            return {"fields": c.get("fields_rows", [])}
        if self.key in (CardSectionKey.TRAINING_DATA, CardSectionKey.EVALUATION_DATA):
            return {
                "dataset": c.get("dataset", ""),
                "data_version": c.get("data_version", ""),
                "period_start": c["period_start"].isoformat() if c.get("period_start") else "",
                "period_end": c["period_end"].isoformat() if c.get("period_end") else "",
                "row_count": c.get("row_count"),
            }
        if self.key == CardSectionKey.FAIRNESS_ASSESSMENT:
            return {"assessments": c.get("assessment_rows", [])}
        return None

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put the service's `data.<field>...` errors next to the matching input."""
        for name, messages in exc.message_dict.items():
            field = name.removeprefix("data.").split("[")[0].split(".")[0]
            target = field if field in self.fields else ("content" if name == "data" else None)
            for message in messages:
                self.add_error(target, f"{name}: {message}" if target is None else message)


class VersionCompareForm(forms.Form):
    a = forms.ChoiceField(label="Compare")
    b = forms.ChoiceField(label="with")

    def __init__(self, *args: Any, model: RegisteredModel, versions: list[str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        choices = [(v, v) for v in versions]
        self.fields["a"].choices = choices
        self.fields["b"].choices = choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("a") and cleaned.get("a") == cleaned.get("b"):
            raise ValidationError("Choose two different versions.")
        return cleaned


class RevisionCompareForm(forms.Form):
    old = forms.IntegerField(label="From revision", min_value=1)
    new = forms.IntegerField(label="to revision", min_value=1)

    def __init__(self, *args: Any, card: ModelCard, last: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.card = card
        for name in ("old", "new"):
            self.fields[name].validators.append(MaxValueValidator(last))
            self.fields[name].widget.attrs["max"] = last

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("old") and cleaned.get("old") == cleaned.get("new"):
            raise ValidationError("Choose two different revisions.")
        return cleaned


class ModelSettingsForm(forms.Form):
    owner = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="nobody yet",
        help_text="Model owners may edit this model's cards.",
    )
    risk_tier = forms.ChoiceField(choices=RiskTier.choices)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=MODEL_DESCRIPTION_MAX_CHARS,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = users_with_role(role="model_owner").order_by("email")

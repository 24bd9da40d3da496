"""HTML input for training runs and their schedules."""

from typing import Any

from django import forms

from governance.models import RegisteredModel
from governance.training.choices import IMPORT_COLUMNS, IMPORT_TABLES, RunState, RunTrigger
from governance.training.services import import_source_check


class RunFilterForm(forms.Form):
    model = forms.ChoiceField(required=False)
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *RunState.choices])
    trigger = forms.ChoiceField(required=False, choices=[("", "Any trigger"), *RunTrigger.choices])

    def __init__(self, *args: Any, models: list[RegisteredModel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "Any model"), *((m.slug, m.name) for m in models)]


class RunStartForm(forms.Form):
    model = forms.ChoiceField(help_text="The model to retrain.")
    reason = forms.CharField(
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why now: recorded with the run and in the audit trail.",
    )

    def __init__(self, *args: Any, models: list[RegisteredModel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(m.slug, m.name) for m in models]


class ScheduleForm(forms.Form):
    minute = forms.CharField(max_length=240, help_text="0-59, lists (0,30), ranges or *.")
    hour = forms.CharField(max_length=96, help_text="0-23.")
    day_of_week = forms.CharField(max_length=64, help_text="0-6 (0 is Sunday), or mon-sun.")
    day_of_month = forms.CharField(max_length=124, help_text="1-31.")
    month_of_year = forms.CharField(max_length=64, help_text="1-12.")
    enabled = forms.BooleanField(required=False)


SOURCE_HELP = (
    "A file in the import folder (CSV or Parquet), gs://bucket/path, "
    "bq://project.dataset.table[@snapshot] or dvc://<repo>@<rev>:<path>."
)


class LakeImportForm(forms.Form):
    """One source per lake table (transactions required), the column mapping, and the
    rejection limit in percent. The mapping is one line per table:
    `transactions: InvoiceDate=ts, Qty=quantity` (a line without `table:` is for
    transactions)."""

    transactions = forms.CharField(max_length=1000, help_text=SOURCE_HELP)
    customers = forms.CharField(max_length=1000, required=False, help_text="Optional.")
    products = forms.CharField(max_length=1000, required=False, help_text="Optional.")
    categories = forms.CharField(max_length=1000, required=False, help_text="Optional.")
    promotions = forms.CharField(max_length=1000, required=False, help_text="Optional.")
    mapping = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Your column names to the lake's, one line per table: "
        "transactions: InvoiceDate=ts, Qty=quantity, UnitPrice=unit_price. Columns already "
        "named as in the lake need no entry. Without an amount, a mapped unit_price gives "
        "amount = quantity x unit_price per row. The lake's columns: "
        + "; ".join(f"{table}: {', '.join(IMPORT_COLUMNS[table])}" for table in IMPORT_TABLES)
        + ".",
    )
    max_rejected_percent = forms.FloatField(
        label="Rejection limit (%)",
        min_value=0,
        max_value=100,
        initial=5,
        help_text="Refuse the import, storing nothing, if more than this share of a "
        "table's rows is rejected.",
    )

    def clean(self) -> dict[str, Any]:
        """Each source checked as the service will (a malformed URI, a path outside the
        import folder), so every field's error shows at once."""
        cleaned = super().clean()
        for table in IMPORT_TABLES:
            if cleaned.get(table):
                try:
                    cleaned[table] = import_source_check(uri=cleaned[table])
                except forms.ValidationError as error:
                    self.add_error(table, error)
        return cleaned

    def clean_mapping(self) -> dict[str, dict[str, str]]:
        from pipelines.importer import ImportFailed, parse_mapping  # -- slow

        mapping: dict[str, dict[str, str]] = {}
        for line in filter(None, (ln.strip() for ln in self.cleaned_data["mapping"].splitlines())):
            table, sep, rest = line.partition(":")
            if not sep or "=" in table:
                table, rest = "transactions", line
            try:
                mapping.setdefault(table.strip(), {}).update(parse_mapping(rest))
            except ImportFailed as error:
                raise forms.ValidationError(str(error).removeprefix("--map: ")) from None
        return mapping

    def sources(self) -> list[tuple[str, str]]:
        return [(t, self.cleaned_data[t].strip()) for t in IMPORT_TABLES if self.cleaned_data[t]]

"""HTML input for training runs and their schedules."""

from typing import Any

from django import forms

from governance.models import RegisteredModel
from governance.training.choices import RunState, RunTrigger


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

from django import forms

from portal.changes.choices import ChangeState


class DecisionForm(forms.Form):
    reason = forms.CharField(
        label="Reason (optional)",
        max_length=1000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ChangeFilterForm(forms.Form):
    state = forms.ChoiceField(choices=[("", "Any state"), *ChangeState.choices], required=False)

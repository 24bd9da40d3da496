"""HTML input for rollouts: the list's filters, starting one, a person's decision, the
canary thresholds of a target."""

from typing import Any

from django import forms

from governance.choices import Target
from governance.models import RegisteredModel
from governance.rollouts.choices import RolloutState


class RolloutFilterForm(forms.Form):
    model = forms.ChoiceField(required=False)
    target = forms.ChoiceField(required=False, choices=[("", "Any target"), *Target.choices])
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *RolloutState.choices])

    def __init__(self, *args: Any, models: list[RegisteredModel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "Any model"), *((m.slug, m.name) for m in models)]


class RolloutStartForm(forms.Form):
    model = forms.ChoiceField()
    version = forms.CharField(max_length=64, help_text="The version to ship, e.g. 2.1.0.")
    target = forms.ChoiceField(choices=Target.choices)

    def __init__(self, *args: Any, models: list[RegisteredModel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(m.slug, m.name) for m in models]


class RolloutDecisionForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=300,
        help_text="Why (recorded with the decision; abort and roll back).",
    )


class CanaryPolicyForm(forms.Form):
    min_requests = forms.IntegerField(
        min_value=1,
        help_text="Requests per track in the analysis window below which the step is "
        "inconclusive (it pauses for a person; never a pass).",
    )
    max_error_rate_increase = forms.FloatField(
        min_value=0,
        max_value=1,
        help_text="The canary's error rate minus the stable version's, as a share "
        "(0.02 = two percentage points).",
    )
    max_p95_latency_ratio = forms.FloatField(
        min_value=1, help_text="The canary's p95 latency over the stable version's."
    )
    max_p99_latency_ratio = forms.FloatField(
        min_value=1, help_text="The canary's p99 latency over the stable version's."
    )
    min_latency_increase_seconds = forms.FloatField(
        min_value=0,
        help_text="A latency ratio only fails the canary when it is also this many seconds slower.",
    )
    max_prediction_shift = forms.FloatField(
        min_value=0,
        help_text="Shift of the mean prediction from the stable version's, relative (0.25 = 25%).",
    )

"""HTML input for the review board: decisions, opening a review, editing policies."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from governance.choices import LifecycleState, Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.choices import VERDICTS_NEEDING_COMMENT, ReviewState, Verdict
from governance.reviews.models import DECISION_COMMENT_MAX_CHARS, ReviewPolicy
from portal.accounts.choices import Role

QUORUM_FIELDS = {
    Role.DATA_SCIENCE_LEAD: "quorum_data_science_lead",
    Role.PRIVACY_OFFICER: "quorum_privacy_officer",
    Role.DEVOPS: "quorum_devops",
}
SKIP = "skip"
# The per-metric tolerances and directions, one "metric: value" per line.
POLICY_METRICS_MAX_CHARS = 2_000


class DecisionForm(forms.Form):
    verdict = forms.ChoiceField(choices=Verdict.choices, widget=forms.RadioSelect)
    role = forms.ChoiceField(
        label="Deciding as", required=False, help_text="Your decision counts for this role only."
    )
    comment = forms.CharField(
        required=False,
        max_length=DECISION_COMMENT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Required to reject or request changes.",
    )

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, Role(r).label) for r in roles]
        self.fields["verdict"].choices = [
            (v, label) for v, label in Verdict.choices if v != Verdict.WITHDRAW
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        verdict = cleaned.get("verdict")
        if verdict in VERDICTS_NEEDING_COMMENT and not cleaned.get("comment", "").strip():
            self.add_error("comment", "Say why: a comment is required for this decision.")
        if verdict and not cleaned.get("role"):
            self.add_error("role", "Choose the board role you decide in.")
        return cleaned


class WithdrawForm(forms.Form):
    comment = forms.CharField(
        required=False,
        max_length=DECISION_COMMENT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ReviewOpenForm(forms.Form):
    version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(), help_text="The model version to promote."
    )
    target = forms.ChoiceField(choices=Target.choices)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["version"]
        field.queryset = (
            ModelVersion.objects.select_related("model")
            .exclude(state__in=(LifecycleState.DISCARDED, LifecycleState.RETIRED))
            .order_by("model__slug", "-version_major", "-version_minor", "-version_patch")
        )
        field.label_from_instance = lambda v: (
            f"{v.model.slug} {v.version} ({v.get_state_display()})"
        )


class QueueFilterForm(forms.Form):
    target = forms.ChoiceField(choices=[("", "Any target"), *Target.choices], required=False)
    model = forms.ChoiceField(required=False)
    state = forms.ChoiceField(choices=[("", "Any state"), *ReviewState.choices], required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "Any model")] + [
            (slug, slug) for slug in RegisteredModel.objects.values_list("slug", flat=True)
        ]


def _pairs_text(mapping: dict[str, Any]) -> str:
    return "\n".join(
        f"{name} = {SKIP if value is None else value}" for name, value in sorted(mapping.items())
    )


def _pairs(text: str, field: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValidationError(f"Line {number}: write it as name = value.")
        pairs.append((name.strip(), value.strip()))
    return pairs


class PolicyForm(forms.Form):
    quorum_data_science_lead = forms.IntegerField(
        label="Data science leads", min_value=0, max_value=5
    )
    quorum_privacy_officer = forms.IntegerField(label="Privacy officers", min_value=0, max_value=5)
    quorum_devops = forms.IntegerField(label="DevOps engineers", min_value=0, max_value=5)
    requester_may_approve = forms.BooleanField(
        required=False, label="The person who requested the review may approve it"
    )
    review_open_days = forms.IntegerField(
        min_value=1, max_value=365, help_text="Days a review waits before it expires."
    )
    approval_valid_days = forms.IntegerField(
        min_value=1, max_value=365, help_text="Days an approval stays valid for deploying."
    )
    check_card_complete = forms.BooleanField(required=False, label="Model card complete")
    check_fairness_present = forms.BooleanField(
        required=False, label="Fairness measured across groups (the version's slice metrics)"
    )
    check_lineage_complete = forms.BooleanField(
        required=False, label="Lineage complete (data, code, image digest)"
    )
    check_metrics_not_worse = forms.BooleanField(
        required=False, label="Metrics not worse than production beyond tolerance"
    )
    check_previous_target = forms.BooleanField(
        required=False, label="Approved for the previous target first"
    )
    metric_tolerance_default = forms.FloatField(
        min_value=0,
        max_value=10,
        label="Default metric tolerance",
        help_text="How much worse than production a metric may be: 0.05 is 5% worse.",
    )
    metric_tolerances = forms.CharField(
        max_length=POLICY_METRICS_MAX_CHARS,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"One per line: mape = 0.05, or n_clusters = {SKIP} to leave it unjudged.",
    )
    metric_directions = forms.CharField(
        max_length=POLICY_METRICS_MAX_CHARS,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="For metrics the catalogue does not know: my_metric = lower (or higher) "
        "is better.",
    )

    @classmethod
    def initial_for(cls, policy: ReviewPolicy) -> dict[str, Any]:
        initial = {
            name: getattr(policy, name)
            for name in cls.base_fields
            if hasattr(policy, name) and name not in ("metric_tolerances", "metric_directions")
        }
        for role, field in QUORUM_FIELDS.items():
            initial[field] = policy.required_roles.get(role, 0)
        initial["metric_tolerances"] = _pairs_text(policy.metric_tolerances)
        initial["metric_directions"] = _pairs_text(policy.metric_directions)
        return initial

    def clean_metric_tolerances(self) -> dict[str, float | None]:
        result: dict[str, float | None] = {}
        for name, value in _pairs(self.cleaned_data["metric_tolerances"], "metric_tolerances"):
            if value == SKIP:
                result[name] = None
                continue
            try:
                result[name] = float(value)
            except ValueError:
                raise ValidationError(f"{name}: a number such as 0.05, or {SKIP}.") from None
        return result

    def clean_metric_directions(self) -> dict[str, str]:
        return dict(_pairs(self.cleaned_data["metric_directions"], "metric_directions"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if all(not cleaned.get(field) for field in QUORUM_FIELDS.values()) and not self.errors:
            raise ValidationError("At least one board role must approve.")
        return cleaned

    def policy_data(self) -> dict[str, Any]:
        data = {
            name: value
            for name, value in self.cleaned_data.items()
            if not name.startswith("quorum_")
        }
        data["required_roles"] = {
            role: self.cleaned_data[field]
            for role, field in QUORUM_FIELDS.items()
            if self.cleaned_data[field]
        }
        return data


class PolicyOverrideForm(forms.Form):
    model = forms.ModelChoiceField(queryset=RegisteredModel.objects.all(), to_field_name="slug")
    target = forms.ChoiceField(choices=Target.choices)

"""Forms of the data subjects app: the public request forms and the privacy officer's."""

from django import forms
from django.core.exceptions import ValidationError

from datasubjects.choices import (
    MAX_EXTENSION_MONTHS,
    ConsentPurpose,
    ConsentSource,
    LookupKey,
    RequestKind,
    RequestState,
    SourceKind,
)
from datasubjects.selectors import privacy_officers

PROOF_MAX_BYTES = 5 * 1024 * 1024
PROOF_TYPES = (".pdf", ".png", ".jpg", ".jpeg")


class PublicRequestForm(forms.Form):
    kind = forms.ChoiceField(label="What would you like us to do?", choices=RequestKind.choices)
    email = forms.EmailField(
        label="The person's e-mail address",
        max_length=254,
        help_text="The address you (or the person you act for) gave us.",
    )
    details = forms.CharField(
        label="Anything we should know",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For a rectification: what is wrong and what is right.",
    )
    consent_purposes = forms.MultipleChoiceField(
        label="Withdrawing consent? For what",
        choices=ConsentPurpose.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to withdraw every consent you gave us.",
    )
    agent_name = forms.CharField(
        label="Acting for someone else? Your name", required=False, max_length=200
    )
    agent_email = forms.EmailField(
        label="Your e-mail address (the code goes here)", required=False, max_length=254
    )
    agent_proof = forms.FileField(
        label="Proof that you may act for them (PDF or image, up to 5 MB)", required=False
    )

    def clean_agent_proof(self) -> object:
        proof = self.cleaned_data.get("agent_proof")
        if proof:
            if proof.size > PROOF_MAX_BYTES:
                raise ValidationError("The proof may be at most 5 MB.")
            if not proof.name.lower().endswith(PROOF_TYPES):
                raise ValidationError("Attach a PDF, PNG or JPEG file.")
        return proof

    def clean(self) -> dict:
        data = super().clean()
        agent = data.get("agent_name") or data.get("agent_email") or data.get("agent_proof")
        if agent:
            for field in ("agent_name", "agent_email", "agent_proof"):
                if not data.get(field) and field not in self.errors:
                    self.add_error(field, "Needed when you act for someone else.")
        return data


class VerifyCodeForm(forms.Form):
    code = forms.RegexField(
        label="The six-digit code we e-mailed", regex=r"^\s*\d{6}\s*$", max_length=12
    )


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=None, label="Privacy officer")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = privacy_officers()
        self.fields["assignee"].label_from_instance = lambda user: user.email


class StateForm(forms.Form):
    state = forms.ChoiceField(
        choices=[
            (RequestState.IN_PROGRESS, "In progress"),
            (RequestState.AWAITING_INPUT, "Awaiting input"),
            (RequestState.COMPLETED, "Completed"),
        ]
    )
    note = forms.CharField(required=False, max_length=500)


class ExtendForm(forms.Form):
    months = forms.TypedChoiceField(
        coerce=int,
        choices=[
            (n, f"{n} month{'s' if n > 1 else ''}") for n in range(1, MAX_EXTENSION_MONTHS + 1)
        ],
    )
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))


class RefuseForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Art. 12(5): manifestly unfounded or excessive, and why. The requester is told.",
    )


class DuplicateForm(forms.Form):
    original = forms.UUIDField(label="Public id of the earlier request")


class ManualTaskForm(forms.Form):
    note = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What was searched or done in this source, by whom, and what was found.",
    )
    attachment = forms.FileField(required=False, help_text="An export or a screenshot (5 MB).")

    def clean_attachment(self) -> object:
        attachment = self.cleaned_data.get("attachment")
        if attachment and attachment.size > PROOF_MAX_BYTES:
            raise ValidationError("The attachment may be at most 5 MB.")
        return attachment


class DataSourceForm(forms.Form):
    slug = forms.SlugField(max_length=50)
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=SourceKind.choices)
    lookup_key = forms.ChoiceField(choices=LookupKey.choices, label="Finds a person by")
    config = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text='e.g. {"url": "sqlite:///crm.sqlite3", "tables": {"crm_contacts": "email"}, '
        '"person_table": "crm_contacts"}',
    )
    active = forms.BooleanField(required=False, initial=True)

    def clean_config(self) -> dict:
        config = self.cleaned_data.get("config") or {}
        if not isinstance(config, dict):
            raise ValidationError("The configuration is a JSON object.")
        return config


class ConsentFilterForm(forms.Form):
    """The consent page's filters; `person` is an e-mail address or a customer id."""

    person = forms.CharField(
        label="Customer (e-mail or customer id)", required=False, max_length=254
    )
    purpose = forms.ChoiceField(
        choices=[("", "Any purpose"), *ConsentPurpose.choices], required=False
    )
    state = forms.ChoiceField(
        choices=[("", "Given or withdrawn"), ("given", "Given"), ("withdrawn", "Withdrawn")],
        required=False,
    )
    source = forms.ChoiceField(choices=[("", "Any source"), *ConsentSource.choices], required=False)


class ConsentRecordForm(forms.Form):
    """A privacy officer records consent given or withdrawn (by letter, on the phone)."""

    email = forms.EmailField(max_length=254)
    customer_id = forms.CharField(max_length=64, required=False)
    purposes = forms.MultipleChoiceField(
        choices=ConsentPurpose.choices, widget=forms.CheckboxSelectMultiple
    )
    given = forms.TypedChoiceField(
        choices=[("1", "Consent given"), ("0", "Consent withdrawn")], coerce=lambda v: v == "1"
    )


class SuppressionLiftForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the person may be profiled again (recorded in the audit trail).",
    )

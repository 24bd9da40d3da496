from django import forms

from portal.audit.choices import ActorType


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, help_text="prefix, e.g. role. or login.failed")
    actor = forms.CharField(required=False, help_text="user:12, token:ab12cd34 or system")
    object_type = forms.CharField(required=False)
    object_id = forms.CharField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_actor(self) -> str:
        actor = self.cleaned_data["actor"].strip()
        if actor and actor.partition(":")[0] not in ActorType.values:
            raise forms.ValidationError(f"Start with one of: {', '.join(ActorType.values)}.")
        return actor

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("'Since' must not be after 'until'.")
        return data

from django import forms

from portal.audit.choices import ActorType


class AuditFilterForm(forms.Form):
    # No longer than the columns they filter (an actor is `type:id`).
    action = forms.CharField(
        required=False, max_length=64, help_text="prefix, e.g. role. or login.failed"
    )
    actor = forms.CharField(
        required=False, max_length=81, help_text="user:12, token:ab12cd34 or system"
    )
    object_type = forms.CharField(required=False, max_length=64)
    object_id = forms.CharField(required=False, max_length=128)
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


class AuditReportForm(forms.Form):
    """The period of an audit report: at most a year, `since` not after `until`."""

    since = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until:
            if since > until:
                raise forms.ValidationError("'Since' must not be after 'until'.")
            if (until - since).days > 366:
                raise forms.ValidationError("A report covers at most a year.")
        return data

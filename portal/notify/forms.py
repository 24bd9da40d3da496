from django import forms

from portal.notify.choices import EventType, WebhookFormat


class WebhookEndpointForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Who receives it, e.g. 'board Slack channel'.")
    url = forms.URLField(
        max_length=500,
        label="URL",
        assume_scheme="https",
        help_text="The receiver's URL. For Slack, the incoming webhook's URL.",
    )
    format = forms.ChoiceField(choices=WebhookFormat.choices, initial=WebhookFormat.JSON)
    event_types = forms.MultipleChoiceField(
        label="Events",
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=list(EventType.values),
    )


class WebhookEndpointCreateForm(WebhookEndpointForm):
    secret = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to have the portal make one (shown once), or paste the "
        "receiver's own signing secret (16 characters or more).",
    )

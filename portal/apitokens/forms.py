from typing import Any

from django import forms

from portal.apitokens.choices import Scope
from portal.apitokens.scopes import scopes_allowed_for


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'cloud-build-ci'.")
    scopes = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple)
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Leave empty for a token that lasts until revoked.",
    )

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the scopes an endpoint uses and the owner's roles allow: a token never
        # does more than its owner may.
        self.fields["scopes"].choices = [
            (scope, Scope(scope).label) for scope in scopes_allowed_for(owner.roles)
        ]
        self.fields["scopes"].help_text = "Only what your own roles allow is offered."

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from portal.accounts.choices import Role
from portal.accounts.identifiers import EmailAddressField
from portal.accounts.models import User


class EmailAuthenticationForm(AuthenticationForm):
    # Normalised before the backends and the lockout see it: `Auditor@Example` is
    # the login `auditor@example`.
    username = EmailAddressField(label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True}))
    # Django's field with a ceiling: a megabyte "password" would still be hashed in full.
    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class UserCreateForm(forms.Form):
    email = EmailAddressField(label="E-mail")
    full_name = forms.CharField(label="Full name", max_length=150, required=False)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("A user with this e-mail address already exists.")
        return email

    def clean(self) -> dict:
        # Nobody but the person knows their password: they choose it through the
        # one-time link the portal e-mails them.
        if self.data.get("password"):
            raise forms.ValidationError(
                "Admins do not choose passwords: the person gets a one-time link to set their own."
            )
        return super().clean()


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class UserFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=254)
    role = forms.ChoiceField(choices=[("", "Any role"), *Role.choices], required=False)

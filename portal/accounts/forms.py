from django import forms
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm

from portal.accounts.choices import Role
from portal.accounts.identifiers import EmailAddressField
from portal.accounts.models import User
from portal.accounts.passwords import PASSWORD_MAX_LENGTH


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


def password_field(label: str, help_text: str = "") -> forms.CharField:
    """A new-password field capped at PASSWORD_MAX_LENGTH (a field error beyond it)."""
    return forms.CharField(
        label=label,
        strip=False,
        max_length=PASSWORD_MAX_LENGTH,
        help_text=help_text,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


class CappedSetPasswordForm(SetPasswordForm):
    """Django's set-password form with both fields capped: a too-long password is a
    field error before anything hashes or validates it."""

    new_password1 = password_field(
        "New password", SetPasswordForm.base_fields["new_password1"].help_text
    )
    new_password2 = password_field(
        "New password confirmation",
        SetPasswordForm.base_fields["new_password2"].help_text,
    )

"""How the portal reads an e-mail address, the login of every person and machine.

Every entry point (sign-in, user creation, Google SSO, the lockout key, the owner of a
token given on the command line) goes through `email_normalise`, so the same person is
the same row whatever case they type; `validate_email_address` is the one validator,
with the limits of the column (254 characters) and of RFC 5321 (64 before the @).
"""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.http import HttpRequest

EMAIL_MAX_LENGTH = 254  # the column (Django's EmailField) and RFC 5321's path limit
EMAIL_LOCAL_PART_MAX_LENGTH = 64  # RFC 5321, 4.5.3.1.1


def email_normalise(value: str) -> str:
    """The stored form of an address: surrounding spaces dropped, all lower case.

    Lower-casing the local part too is safe for the client's Workspace domain (Google
    treats it case-insensitively) and is what makes `Auditor@ZeroMargin.example` the
    same login as `auditor@zeromargin.example`.
    """
    return (value or "").strip().lower()


def validate_email_address(value: str) -> None:
    """Raise ValidationError unless `value` is an address the portal can store."""
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"An e-mail address has at most {EMAIL_MAX_LENGTH} characters "
            f"(this one has {len(value)}).",
            code="max_length",
        )
    local_part = value.rsplit("@", 1)[0]
    if "@" in value and len(local_part) > EMAIL_LOCAL_PART_MAX_LENGTH:
        raise ValidationError(
            f"The part before the @ has at most {EMAIL_LOCAL_PART_MAX_LENGTH} characters "
            f"(this one has {len(local_part)}).",
            code="local_part_length",
        )
    EmailValidator(message="Enter a valid e-mail address.")(value)


class EmailAddressField(forms.CharField):
    """A form field for an e-mail address: normalised, then the one validator."""

    widget = forms.EmailInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", EMAIL_MAX_LENGTH)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        return email_normalise(super().to_python(value))

    def validate(self, value: str) -> None:
        super().validate(value)
        if value:
            validate_email_address(value)


def axes_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The lockout key's username, normalised as at sign-in (django-axes calls this)."""
    username = (credentials or {}).get("username")
    if username is None:
        username = getattr(request, "POST", {}).get("username")
    return email_normalise(username) if username is not None else None

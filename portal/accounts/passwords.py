"""How long a password may be, wherever one is set.

Django caps no new password: its set-password form would take a password as long as
the request allows (megabytes), hash it and run every validator over it. The portal
caps new passwords at PASSWORD_MAX_LENGTH characters (NIST SP 800-63B asks verifiers
to accept at least 64), in three places that each say so by field: the forms' own
fields (`CappedSetPasswordForm`: `max_length`, also the browser's `maxlength`), the
validator in AUTH_PASSWORD_VALIDATORS (every `validate_password`), and the operator's
service.
Sign-in keeps its own, wider ceiling (EmailAuthenticationForm): a password set before
the cap still signs in.
"""

from typing import Any

from django.core.exceptions import ValidationError

PASSWORD_MAX_LENGTH = 128


class MaximumLengthValidator:
    """A password validator (AUTH_PASSWORD_VALIDATORS) refusing passwords longer than
    `max_length` characters, code `password_too_long`."""

    def __init__(self, max_length: int = PASSWORD_MAX_LENGTH) -> None:
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                "This password is too long: it may have at most %(max_length)d characters.",
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self) -> str:
        return f"Your password can have at most {self.max_length} characters."

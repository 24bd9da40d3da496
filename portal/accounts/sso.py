"""Google SSO through social-auth, restricted to the client's Workspace domain."""

from typing import Any

from django.conf import settings
from social_core.backends.google import GoogleOAuth2
from social_core.exceptions import AuthConfigurationError, AuthPolicyError

from portal.accounts.identifiers import email_normalise
from portal.accounts.models import User
from portal.accounts.services import user_create
from portal.audit.actors import Actor, client_ip_for_request


class GoogleWorkspaceOAuth2(GoogleOAuth2):
    """Google's OAuth2 backend with its endpoints taken from settings.

    The endpoints default to Google's; the tests point them at a local stand-in.
    The backend keeps social-auth's name, so the callback is /complete/google-oauth2/.
    """

    def auth_url(self) -> str:
        if not settings.SSO_ENABLED:
            raise AuthConfigurationError(self, "Google sign-in is not configured on this portal.")
        return super().auth_url()

    def authorization_url(self) -> str:
        return settings.GOOGLE_OAUTH2_AUTH_URL

    def access_token_url(self) -> str:
        return settings.GOOGLE_OAUTH2_TOKEN_URL

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        response = self.get_json(
            settings.GOOGLE_OAUTH2_USERINFO_URL,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        self.validate_email_verified(response)
        domain = settings.GOOGLE_WORKSPACE_DOMAIN.lower()
        # `hd` is set only for Workspace accounts: a consumer account with an address
        # on the domain (possible for some providers) is still refused.
        if (response.get("hd") or "").lower() != domain:
            raise AuthPolicyError(self, code="authentication_disallowed", stage="pipeline")
        return response


def associate_by_verified_email(
    backend: Any, details: dict, user: User | None = None, *args: Any, **kwargs: Any
) -> dict | None:
    """Link a first Google sign-in to the account an admin created for that address.

    Safe only because Google has verified the address and the domain is ours.
    """
    if user is not None:
        if user.is_machine:
            raise AuthPolicyError(backend, code="authentication_disallowed", stage="pipeline")
        return None
    email = email_normalise(details.get("email") or "")
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        if existing.is_machine:  # a machine account never signs in
            raise AuthPolicyError(backend, code="authentication_disallowed", stage="pipeline")
        return {"user": existing, "is_new": False}
    return None


def create_user_without_roles(
    backend: Any, details: dict, user: User | None = None, *args: Any, **kwargs: Any
) -> dict | None:
    """A first SSO sign-in creates a user who holds no role until an admin grants one."""
    if user is not None:
        return None
    strategy = kwargs.get("strategy") or backend.strategy
    request = getattr(strategy, "request", None)
    client_ip = client_ip_for_request(request) if request is not None else None
    new_user = user_create(
        email=email_normalise(details["email"]),
        # Google's display name, cut to the column (the person may edit it later).
        full_name=(details.get("fullname") or "")[: User._meta.get_field("full_name").max_length],
        actor=Actor.system("sso"),
        client_ip=client_ip,
        source="google-sso",
    )
    return {"user": new_user, "is_new": True}

from django.http import HttpRequest
from rest_framework import authentication, exceptions

from portal.apitokens.services import apitoken_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`: request.user is the owner, request.auth the token."""

    keyword = "Bearer"

    def authenticate(self, request: HttpRequest) -> tuple | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <token>'."
            )
        token = apitoken_authenticate(presented=parts[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown, expired or revoked token.")
        return (token.owner, token)

    def authenticate_header(self, request: HttpRequest) -> str:
        return f'{self.keyword} realm="api"'

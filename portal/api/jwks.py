"""The public keys that verify the portal's attestations, as a JWK set."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.attestation import public_jwks
from portal.changes.configuration import attestation_keys_approved

# Short enough that a newly published key reaches verifiers well before it signs
# (see the rotation steps in portal/attestation.py).
JWKS_MAX_AGE_SECONDS = 300


class JwksApi(APIView):
    """Every approved configured attestation key's public half; public and cacheable.

    A key added to ATTESTATION_SIGNING_KEYS is published only once a second portal
    admin approved it (portal.changes.configuration)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        operation_id="jwks",
        auth=[],
        responses={200: OpenApiResponse(description='A JWK set: {"keys": [{"kid", "kty", ...}]}')},
    )
    def get(self, request: Request) -> Response:
        response = Response(public_jwks(attestation_keys_approved()))
        response["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
        return response

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.apitokens.models import ApiToken


class WhoAmIApi(APIView):
    """Who the API thinks is calling: the token (name, scopes, expiry) or the person."""

    class OutputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=["token", "user"])
        user = serializers.IntegerField()
        roles = serializers.ListField(child=serializers.CharField())
        token = serializers.CharField(allow_null=True)
        token_name = serializers.CharField(allow_null=True)
        scopes = serializers.ListField(child=serializers.CharField())
        expires_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(responses=OutputSerializer, operation_id="whoami")
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        data = {
            "kind": "token" if token else "user",
            "user": request.user.pk,
            "roles": sorted(request.user.roles),
            "token": token.prefix if token else None,
            "token_name": token.name if token else None,
            "scopes": token.scopes if token else [],
            "expires_at": token.expires_at if token else None,
        }
        return Response(self.OutputSerializer(data).data)

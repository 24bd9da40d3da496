"""The portal's URL map plus the floor of the gate benchmark: an API endpoint behind
the same token authentication and scope check as the gate, answering a constant, so
what it costs is what any authenticated API request costs at least."""

from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.reviews.permissions import REVIEW_READERS
from portal.apitokens.choices import Scope
from portal.urls import handler403, handler404, handler500

__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]


class FloorApi(APIView):
    """A constant JSON answer; authentication and permissions as the gate's."""

    required_scopes = (Scope.GATES_READ,)
    required_roles = REVIEW_READERS

    def get(self, request: Request) -> Response:
        return Response({"allowed": True})


urlpatterns = [
    path("api/v1/bench/floor", FloorApi.as_view(), name="bench-floor"),
    path("", include("portal.urls")),
]

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.api.jwks import JwksApi
from portal.apitokens.api import WhoAmIApi

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's initialiser as a separate script, so the
    # page runs under our strict Content-Security-Policy (no inline script).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/whoami", WhoAmIApi.as_view(), name="api-whoami"),
    path(".well-known/jwks.json", JwksApi.as_view(), name="jwks"),
]

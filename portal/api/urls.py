from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.api.jwks import JwksApi
from portal.apitokens.api import WhoAmIApi
from portal.audit.api import (
    AuditCheckpointLatestApi,
    AuditConsistencyProofApi,
    AuditEventListApi,
    AuditInclusionProofApi,
)

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's initialiser as a separate script, so the
    # page runs under our strict Content-Security-Policy (no inline script).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/whoami", WhoAmIApi.as_view(), name="api-whoami"),
    path("api/v1/audit/events", AuditEventListApi.as_view(), name="api-audit-events"),
    path(
        "api/v1/audit/checkpoint", AuditCheckpointLatestApi.as_view(), name="api-audit-checkpoint"
    ),
    path(
        "api/v1/audit/proofs/inclusion",
        AuditInclusionProofApi.as_view(),
        name="api-audit-inclusion-proof",
    ),
    path(
        "api/v1/audit/proofs/consistency",
        AuditConsistencyProofApi.as_view(),
        name="api-audit-consistency-proof",
    ),
    path(".well-known/jwks.json", JwksApi.as_view(), name="jwks"),
]

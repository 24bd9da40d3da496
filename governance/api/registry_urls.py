"""Registry API routes: /api/v1/models/..."""

from django.urls import path

from governance.api import registry

urlpatterns = [
    path("api/v1/models", registry.ModelListApi.as_view(), name="api-model-list"),
    path(
        "api/v1/models/<slug:model>/versions",
        registry.VersionsApi.as_view(),
        name="api-version-list",
    ),
    path(
        "api/v1/models/<slug:model>/versions/<str:version>",
        registry.VersionDetailApi.as_view(),
        name="api-version-detail",
    ),
    path(
        "api/v1/models/<slug:model>/versions/<str:version>/card",
        registry.CardApi.as_view(),
        name="api-version-card",
    ),
]

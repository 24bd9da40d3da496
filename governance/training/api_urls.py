"""Training runs API routes: /api/v1/pipelines/runs..."""

from django.urls import path

from governance.training import api

urlpatterns = [
    path("api/v1/pipelines/runs", api.RunStartApi.as_view(), name="api-pipeline-run-start"),
    path(
        "api/v1/pipelines/runs/<int:pk>",
        api.RunDetailApi.as_view(),
        name="api-pipeline-run-detail",
    ),
]

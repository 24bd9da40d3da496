"""Rollouts API routes: /api/v1/rollouts..."""

from django.urls import path

from governance.rollouts import api

urlpatterns = [
    path("api/v1/rollouts", api.RolloutStartApi.as_view(), name="api-rollout-start"),
    path("api/v1/rollouts/<int:pk>", api.RolloutDetailApi.as_view(), name="api-rollout-detail"),
    path(
        "api/v1/rollouts/<int:pk>/rollback",
        api.RolloutRollbackApi.as_view(),
        name="api-rollout-rollback",
    ),
]

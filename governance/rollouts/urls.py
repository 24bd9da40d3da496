"""Rollout pages (included in the governance namespace)."""

from django.urls import path

from governance.rollouts import views

urlpatterns = [
    path("rollouts/", views.rollout_list, name="rollout_list"),
    path("rollouts/start/", views.rollout_start_view, name="rollout_start"),
    path("rollouts/<int:pk>/", views.rollout_detail, name="rollout_detail"),
    path("rollouts/<int:pk>/progress/", views.rollout_progress, name="rollout_progress"),
    path("rollouts/<int:pk>/<slug:verb>/", views.rollout_decide, name="rollout_decide"),
    path("rollouts/thresholds/", views.canary_policy_list, name="canary_policy_list"),
    path("rollouts/thresholds/<slug:target>/", views.canary_policy_edit, name="canary_policy_edit"),
]

"""Governance API routes: the registry (governance.api) and the review board
(governance.reviews)."""

from django.urls import include, path

# The review board's first: the deployment gate is the busiest route of all.
urlpatterns = [
    path("", include("governance.reviews.api_urls")),
    path("", include("governance.api.registry_urls")),
    path("", include("governance.training.api_urls")),
    path("", include("governance.rollouts.api_urls")),
]

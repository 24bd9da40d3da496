"""Governance API routes: the registry (governance.api) and the review board
(governance.reviews)."""

from django.urls import include, path

urlpatterns = [
    path("", include("governance.api.registry_urls")),
    path("", include("governance.reviews.api_urls")),
    path("", include("governance.training.api_urls")),
    path("", include("governance.rollouts.api_urls")),
]

"""Governance pages: the registry and cards (governance.views) and the review board
(governance.reviews)."""

from django.urls import include, path

from governance.views import registry

app_name = "governance"

urlpatterns = [
    path("models/", registry.model_list, name="model_list"),
    path("", include("governance.reviews.urls")),
]

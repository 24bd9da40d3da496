"""Governance pages: the registry and cards (governance.views) and the review board
(governance.reviews)."""

from django.urls import include, path

from governance.views import cards, registry

app_name = "governance"

VERSION = "models/<slug:model>/versions/<str:version>/"

urlpatterns = [
    path("models/", registry.model_list, name="model_list"),
    path("models/<slug:model>/", registry.model_detail, name="model_detail"),
    path("models/<slug:model>/compare/", registry.model_compare, name="model_compare"),
    path("models/<slug:model>/settings/", registry.model_settings, name="model_settings"),
    path(VERSION, registry.version_detail, name="version_detail"),
    path(f"{VERSION}card/revisions/", cards.card_revision_list, name="card_revisions"),
    path(
        f"{VERSION}card/sections/<slug:key>/edit/",
        cards.card_section_edit,
        name="card_section_edit",
    ),
    path(
        f"{VERSION}card/sections/<slug:key>/confirm/",
        cards.card_section_confirm_view,
        name="card_section_confirm",
    ),
    path(f"{VERSION}card/export.<str:fmt>", cards.card_export, name="card_export"),
    path("", include("governance.reviews.urls")),
    path("", include("governance.training.urls")),
    path("", include("governance.rollouts.urls")),
]

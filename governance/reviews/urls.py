from django.urls import path

from governance.reviews import views

# Included from governance/urls.py, so names are governance:<name>.
urlpatterns = [
    path(
        "models/<slug:model>/versions/<str:version>/evidence-pack",
        views.version_evidence_pack_view,
        name="version_evidence_pack",
    ),
    path("reviews/", views.review_list, name="review_list"),
    path("reviews/open/", views.review_open_view, name="review_open"),
    path("reviews/<int:pk>/", views.review_detail, name="review_detail"),
    path("reviews/<int:pk>/decide/", views.review_decide_view, name="review_decide"),
    path("reviews/<int:pk>/recheck/", views.review_recheck_view, name="review_recheck"),
    path("reviews/policies/", views.policy_list, name="policy_list"),
    path("reviews/policies/new/", views.policy_override_create_view, name="policy_create"),
    path("reviews/policies/<int:pk>/", views.policy_edit, name="policy_edit"),
    path(
        "reviews/policies/<int:pk>/delete/",
        views.policy_override_delete_view,
        name="policy_delete",
    ),
]

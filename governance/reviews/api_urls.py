"""Review board API routes (included at the project root)."""

from django.urls import path

from governance.reviews import api, hooks

# The busiest route of the portal: portal/urls.py lists it first, at the top of the URL
# map itself, since entering each nested include costs about as much as matching a route.
gate_urlpatterns = [
    path(
        "api/v1/gates/<slug:model>/<str:version>/<str:target>",
        api.GateApi.as_view(),
        name="api-gate",
    ),
]

urlpatterns = [
    path("api/v1/reviews", api.ReviewOpenApi.as_view(), name="api-review-open"),
    path("api/v1/reviews/<int:pk>", api.ReviewDetailApi.as_view(), name="api-review-detail"),
    path("hooks/clouddeploy", hooks.clouddeploy_push, name="hook-clouddeploy"),
]

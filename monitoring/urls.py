from django.urls import path

from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("monitoring/", views.overview, name="overview"),
    path("monitoring/<slug:model>/", views.model_dashboard, name="model"),
    path(
        "monitoring/<slug:model>/thresholds/<slug:metric>",
        views.threshold_edit,
        name="threshold_edit",
    ),
]

from django.urls import path

from monitoring import hooks, views

app_name = "monitoring"

urlpatterns = [
    path("monitoring/", views.overview, name="overview"),
    path("monitoring/incidents/", views.incident_list, name="incident_list"),
    path("monitoring/incidents/<int:pk>/", views.incident_detail, name="incident_detail"),
    path(
        "monitoring/incidents/<int:pk>/acknowledge",
        views.incident_acknowledge_view,
        name="incident_acknowledge",
    ),
    path("monitoring/incidents/<int:pk>/close", views.incident_close_view, name="incident_close"),
    path("monitoring/<slug:model>/", views.model_dashboard, name="model"),
    path(
        "monitoring/<slug:model>/thresholds/<slug:metric>",
        views.threshold_edit,
        name="threshold_edit",
    ),
    path("hooks/alertmanager", hooks.alertmanager_webhook, name="hook-alertmanager"),
]

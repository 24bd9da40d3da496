"""Training run pages (included in the governance namespace)."""

from django.urls import path

from governance.training import views

urlpatterns = [
    path("pipelines/runs/", views.run_list, name="run_list"),
    path("pipelines/runs/start/", views.run_start_view, name="run_start"),
    path("pipelines/runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("pipelines/runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("pipelines/runs/<int:pk>/cancel/", views.run_cancel_view, name="run_cancel"),
    path("pipelines/schedules/", views.schedule_list, name="schedule_list"),
    path("pipelines/schedules/<int:pk>/edit/", views.schedule_edit, name="schedule_edit"),
]

"""Training run pages (included in the governance namespace)."""

from django.urls import path

from governance.training import views

urlpatterns = [
    path("pipelines/runs/", views.run_list, name="run_list"),
    path("pipelines/runs/start/", views.run_start_view, name="run_start"),
    path("pipelines/runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("pipelines/runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("pipelines/runs/<int:pk>/cancel/", views.run_cancel_view, name="run_cancel"),
    path("pipelines/imports/", views.import_list, name="import_list"),
    path("pipelines/imports/new/", views.import_start_view, name="import_start"),
    path("pipelines/imports/<int:pk>/", views.import_detail, name="import_detail"),
    path("pipelines/imports/<int:pk>/progress/", views.import_progress, name="import_progress"),
    path("pipelines/schedules/", views.schedule_list, name="schedule_list"),
    path("pipelines/schedules/<int:pk>/edit/", views.schedule_edit, name="schedule_edit"),
]

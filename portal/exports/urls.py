from django.urls import path

from portal.exports import views

app_name = "exports"

urlpatterns = [
    path("exports/<int:pk>/", views.export_job_detail, name="job_detail"),
    path("exports/<int:pk>/progress", views.export_job_progress, name="job_progress"),
    path("exports/<int:pk>/download", views.export_job_download, name="job_download"),
]

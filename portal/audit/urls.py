from django.urls import path

from portal.audit import views

app_name = "audit"

urlpatterns = [
    path("audit/", views.event_list, name="event_list"),
    path("audit/events/<int:sequence>/", views.event_detail, name="event_detail"),
    path("audit/export.<str:fmt>", views.event_export, name="export"),
    # An object id may hold a slash: a review policy's is "<model or default>/<target>".
    path(
        "audit/objects/<str:object_type>/<path:object_id>/",
        views.object_timeline,
        name="timeline",
    ),
    path(
        "audit/objects/<str:object_type>/<path:object_id>/export.csv",
        views.object_timeline_export,
        name="timeline_export",
    ),
    path("audit/report", views.period_report, name="report"),
    path("audit/verify", views.chain_verify, name="verify"),
]

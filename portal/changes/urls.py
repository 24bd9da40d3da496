from django.urls import path

from portal.changes import api, views

app_name = "changes"

urlpatterns = [
    path("manage/changes/", views.change_list, name="change_list"),
    path("manage/changes/<int:pk>/", views.change_detail, name="change_detail"),
    path("manage/changes/<int:pk>/approve", views.change_approve_view, name="change_approve"),
    path("manage/changes/<int:pk>/reject", views.change_reject_view, name="change_reject"),
    path("api/v1/governance/changes", api.ChangeListApi.as_view(), name="api-change-list"),
    path(
        "api/v1/governance/changes/<int:pk>/approve",
        api.ChangeApproveApi.as_view(),
        name="api-change-approve",
    ),
    path(
        "api/v1/governance/changes/<int:pk>/reject",
        api.ChangeRejectApi.as_view(),
        name="api-change-reject",
    ),
]

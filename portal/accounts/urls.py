from django.contrib.auth import views as auth_views
from django.urls import path

from portal.accounts import views

app_name = "accounts"

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("manage/users/", views.user_list, name="user_list"),
    path("manage/users/new", views.user_create_view, name="user_create"),
    path("manage/users/<int:pk>/", views.user_detail, name="user_detail"),
    path("manage/users/<int:pk>/roles/grant", views.user_role_grant, name="user_role_grant"),
    path("manage/users/<int:pk>/roles/revoke", views.user_role_revoke, name="user_role_revoke"),
    path("manage/users/<int:pk>/active", views.user_toggle_active, name="user_toggle_active"),
    path(
        "manage/users/<int:pk>/set-password-link",
        views.user_set_password_link,
        name="user_set_password_link",
    ),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        views.SetPasswordView.as_view(),
        name="set_password",
    ),
]

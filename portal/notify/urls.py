from django.urls import path

from portal.notify import views

app_name = "notify"

urlpatterns = [
    path("manage/webhooks/", views.endpoint_list, name="endpoint_list"),
    path("manage/webhooks/new", views.endpoint_create, name="endpoint_create"),
    path("manage/webhooks/<int:pk>/edit", views.endpoint_edit, name="endpoint_edit"),
    path(
        "manage/webhooks/<int:pk>/deactivate", views.endpoint_deactivate, name="endpoint_deactivate"
    ),
    path("manage/webhooks/<int:pk>/test", views.endpoint_test, name="endpoint_test"),
    path(
        "manage/webhooks/deliveries/<int:pk>/resend", views.delivery_resend, name="delivery_resend"
    ),
]

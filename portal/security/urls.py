from django.urls import path

from portal.security import views

app_name = "security"

urlpatterns = [
    path("audit/refusals/", views.refusal_list, name="refusal_list"),
]

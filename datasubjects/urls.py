from django.urls import path

from datasubjects import views

app_name = "datasubjects"

urlpatterns = [path("data-subjects/", views.request_list, name="request_list")]

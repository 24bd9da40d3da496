from django.urls import path

from portal.apitokens import views

app_name = "apitokens"

urlpatterns = [
    path("manage/tokens/", views.token_list, name="list"),
    path("manage/tokens/new", views.token_create, name="create"),
    path("manage/tokens/<int:pk>/revoke", views.token_revoke, name="revoke"),
]

from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [
    path("models/", views.model_list, name="model_list"),
    path("reviews/", views.review_list, name="review_list"),
]

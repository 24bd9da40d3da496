from django.urls import path

from governance.reviews import views

# Included from governance/urls.py, so names are governance:<name>.
urlpatterns = [path("reviews/", views.review_list, name="review_list")]

"""The portal's URL map plus two API routes that only the error-shape tests use: one
that fails (500) and a plain Django form view under /api/ (CSRF enforced)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from portal.urls import urlpatterns as portal_urlpatterns


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in an API view")


def plain_form(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/test-boom", boom),
    path("hooks/test-boom", boom),
    path("api/v1/test-form", plain_form),
    *portal_urlpatterns,
]
handler404 = "portal.ui.views.error_404"
handler500 = "portal.ui.views.error_500"

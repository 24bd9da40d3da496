"""Every error under /api/ and /hooks/ is the API's JSON error shape, with DEBUG on
(the technical pages) and off (production): 404, 405, 413, 415, 500, CSRF failures
and malformed JSON."""

import json

import pytest
from django.test import Client

from portal.accounts.choices import Role

pytestmark = pytest.mark.django_db

BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings):
    settings.DEBUG = request.param
    settings.ROOT_URLCONF = "tests.portal.api.urls_for_errors"
    return request.param


@pytest.fixture()
def api(debug, make_user):
    client = Client(raise_request_exception=False)
    client.force_login(make_user(Role.PORTAL_ADMIN, Role.DATA_SCIENCE_LEAD), backend=BACKEND)
    return client


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content[:200]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "fields"} and body["error"]
    return body


@pytest.mark.parametrize(
    "path", ["/api/v1/reviews/abc", "/api/v1/no-such-thing", "/api/v2/", "/hooks/nope"]
)
def test_api_unknown_path_is_a_json_404(api, path):
    assert assert_error_shape(api.get(path), 404)["error"] == "Not found."


@pytest.mark.parametrize(
    ("method", "path"),
    [("delete", "/api/v1/whoami"), ("get", "/hooks/alertmanager"), ("get", "/hooks/clouddeploy")],
)
def test_api_wrong_method_is_a_json_405_keeping_allow(api, method, path):
    response = getattr(api, method)(path)
    assert_error_shape(response, 405)
    assert response["Allow"]


@pytest.mark.parametrize("path", ["/api/v1/reviews", "/hooks/alertmanager", "/hooks/clouddeploy"])
def test_api_body_over_the_upload_limit_is_a_json_413(api, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"comment": "a" * 2000})
    response = api.post(path, data=body, content_type="application/json")
    assert "1000 bytes" in assert_error_shape(response, 413)["error"]


def test_api_body_at_the_upload_limit_is_not_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/reviews", data="{}", content_type="application/json")
    assert response.status_code != 413
    assert_error_shape(response, 400)


def test_api_unsupported_media_type_is_a_json_415(api):
    response = api.post("/api/v1/reviews", data="x=1", content_type="text/plain")
    assert_error_shape(response, 415)


def test_api_malformed_json_is_a_json_400(api):
    response = api.post("/api/v1/reviews", data="{bad", content_type="application/json")
    assert "JSON parse error" in assert_error_shape(response, 400)["error"]


@pytest.mark.parametrize("path", ["/api/v1/test-boom", "/hooks/test-boom"])
def test_api_server_error_is_a_json_500_without_the_traceback(api, path):
    response = api.get(path)
    body = assert_error_shape(response, 500)
    assert "a bug in an API view" not in json.dumps(body)
    assert b"Traceback" not in response.content


def test_api_csrf_failure_of_a_session_is_json(debug, make_user):
    """DRF's session check and Django's own CSRF middleware (a plain view under /api/)."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(make_user(Role.PORTAL_ADMIN), backend=BACKEND)
    drf = client.post("/api/v1/reviews", data="{}", content_type="application/json")
    assert "CSRF" in assert_error_shape(drf, 403)["error"]
    plain = client.post("/api/v1/test-form", data={"a": "1"})
    assert_error_shape(plain, 403)


def test_pages_keep_their_html_errors(api):
    """Only the API's paths change: a missing page is still the HTML 404 page."""
    response = api.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_api_413_still_carries_the_security_headers(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = api.post(
        "/api/v1/reviews", data='{"a": "0123456789"}', content_type="application/json"
    )
    assert response.status_code == 413
    assert response["X-Content-Type-Options"] == "nosniff"

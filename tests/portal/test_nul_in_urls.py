"""A NUL character in a URL's path or query string is a 400 naming where it was, never a
500: PostgreSQL text cannot hold NUL, and views put path segments (a version string, an
object id) and filter values straight into queries. Under /api/ and /hooks/ the answer
is the API's JSON error shape."""

import pytest
from django.test import Client

from portal.accounts.choices import Role
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

PAGES = [
    "/models/{model}/versions/%00/",
    "/models/{model}/versions/{version}%00/",
    "/models/{model}/versions/%00/card/revisions/",
    "/models/{model}/versions/%00/card/export.pdf",
    "/audit/objects/model_version/%00/",
    "/audit/refusals/?kind=%00",
    "/audit/refusals/?source=%00",
]
API = [
    ("/api/v1/models/{model}/versions/%00", "path"),
    ("/api/v1/models/{model}/versions/%00/card", "path"),
    ("/api/v1/gates/{model}/%00/production", "path"),
    ("/api/v1/gates/{model}/{version}/%00", "path"),
    ("/api/v1/audit/events?after=1&action=%00", "action"),
]


@pytest.fixture()
def reader(make_user):
    client = Client(raise_request_exception=False)
    client.force_login(
        make_user(Role.PORTAL_ADMIN, Role.AUDITOR),
        backend="django.contrib.auth.backends.ModelBackend",
    )
    return client


@pytest.fixture()
def version():
    return ModelVersionFactory()


@pytest.mark.parametrize("path", PAGES)
def test_nul_in_a_page_url_is_a_400(reader, version, path):
    response = reader.get(path.format(model=version.model.slug, version=version.version))
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize(("path", "field"), API)
def test_nul_in_an_api_url_is_a_json_400_naming_where(reader, version, path, field):
    response = reader.get(path.format(model=version.model.slug, version=version.version))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "NUL" in response.json()["fields"][field][0]


def test_a_url_without_nul_still_reaches_its_view(reader, version):
    """The refusal is about the NUL only: the same page without it answers."""
    page = f"/models/{version.model.slug}/versions/{version.version}/"
    assert reader.get(page).status_code == 200
    assert reader.get("/audit/refusals/?kind=security").status_code == 200

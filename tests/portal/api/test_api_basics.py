"""The API's shared contract: OpenAPI schema, docs from vendored assets, JSON errors."""

import pytest
import yaml
from django.urls import reverse

from portal.apitokens.services import apitoken_create

pytestmark = pytest.mark.django_db


def test_schema_is_openapi_3_and_documents_bearer_tokens(client_for, outsider):
    response = client_for(outsider).get(reverse("api-schema"))
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/whoami" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_schema_refuses_anonymous_callers(client):
    response = client.get(reverse("api-schema"))
    assert response.status_code == 401
    assert yaml.safe_load(response.content)["error"]


def test_schema_answers_a_token(client, devops):
    issued = apitoken_create(
        name="ci", owner=devops, scopes=["gates:read"], expires_at=None, actor=devops.audit_actor()
    )
    response = client.get(reverse("api-schema"), HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert response.status_code == 200


def test_docs_page_loads_swagger_from_our_own_static_files(client_for, outsider):
    response = client_for(outsider).get(reverse("api-docs"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert (
        "unsafe-inline"
        not in response["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    )


def test_unknown_api_path_is_a_json_404(client_for, outsider):
    response = client_for(outsider).get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found.", "fields": {}}


def test_api_server_error_is_json_not_html(rf):
    from portal.ui.views import error_500

    response = error_500(rf.get("/api/v1/whoami"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"


def test_html_server_error_uses_the_portal_layout(rf):
    from portal.ui.views import error_500

    response = error_500(rf.get("/models/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()

"""The registry API contract: registration (idempotent, conflicts, every 400), reads,
scopes and roles, pagination and filters, query counts, the OpenAPI schema."""

import itertools
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.models import ModelVersion, RegisteredModel
from governance.services.registry import target_assign, version_register
from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_revoke
from portal.audit.models import AuditEvent
from portal.audit.verification import audit_chain_verify
from tests.governance.conftest import CI, registration_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/demand-forecasting/versions"


def post(client, body, url=URL):
    return client.post(url, body, content_type="application/json")


def test_register_new_version_returns_201_with_lineage_and_card(bearer):
    client, record = bearer("registry:write")
    response = post(client, registration_body("2.1.0"))
    assert response.status_code == 201
    data = response.json()
    assert data["version"] == "2.1.0"
    assert data["tag"] == "forecasting-v2"
    assert data["state"] == "registered"
    assert data["lineage_complete"] is True
    assert data["metrics"]["mape"] == 0.121
    assert response["Location"] == "/api/v1/models/demand-forecasting/versions/2.1.0"
    version = ModelVersion.objects.get(model__slug="demand-forecasting", version="2.1.0")
    assert version.card.sections.count() == 10
    assert version.registered_by == f"token:{record.prefix}"


def test_register_is_audited_with_the_token_as_actor(bearer):
    client, record = bearer("registry:write")
    post(client, registration_body("2.1.0"))
    event = AuditEvent.objects.get(action="version.registered")
    assert (event.actor_type, event.actor_id) == ("token", record.prefix)
    assert event.object_type == "model_version"
    assert event.object_id == "demand-forecasting@2.1.0"
    assert event.payload_record.data["code_version"] == registration_body("2.1.0")["code_version"]


def test_register_same_body_again_returns_200_and_the_same_version(bearer):
    client, _ = bearer("registry:write")
    first = post(client, registration_body("2.1.0"))
    again = post(client, registration_body("2.1.0"))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert ModelVersion.objects.filter(version="2.1.0").count() == 1
    assert AuditEvent.objects.filter(action="version.registered").count() == 1


def test_register_different_body_for_existing_version_is_409_naming_the_fields(bearer):
    client, _ = bearer("registry:write")
    post(client, registration_body("2.1.0"))
    response = post(
        client,
        registration_body("2.1.0", data_version="bq-snapshot-other", metrics={"mae": 1.0}),
    )
    assert response.status_code == 409
    data = response.json()
    assert sorted(data["differing_fields"]) == ["data_version", "metrics"]
    assert set(data["fields"]) == {"data_version", "metrics"}
    assert "bq-snapshot-other" in data["fields"]["data_version"][0]
    assert "data_version" in data["error"]
    version = ModelVersion.objects.get(version="2.1.0")
    assert version.data_version == registration_body("2.1.0")["data_version"]


def test_register_unknown_model_is_400_naming_the_model(bearer):
    client, _ = bearer("registry:write")
    response = post(client, registration_body(), url="/api/v1/models/churn/versions")
    assert response.status_code == 400
    assert "churn" in response.json()["fields"]["model"][0]
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("bad", ["2.1", "v2.1.0", "2.1.0.4", "02.1.0", "latest"])
def test_register_malformed_semver_is_400_naming_version(bearer, bad):
    client, _ = bearer("registry:write")
    response = post(client, registration_body(bad))
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["version"]


@pytest.mark.parametrize(
    "field", ["data_version", "code_version", "image_digest", "artifact_uri", "version"]
)
def test_register_missing_lineage_is_400_naming_the_field(bearer, field):
    client, _ = bearer("registry:write")
    body = registration_body("2.1.0")
    del body[field]
    response = post(client, body)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert response.json()["error"] == "Invalid input."


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"image_digest": "sha256:abc"}, "image_digest"),
        ({"code_version": "main"}, "code_version"),
        ({"data_version": ""}, "data_version"),
        ({"metrics": {"mae": 350.5, "mape": "12%"}}, "metrics.mape"),
        ({"metrics": {"mae": True}}, "metrics.mae"),
        ({"metrics": {"cluster_sizes": [1, "x"]}}, "metrics.cluster_sizes"),
        (
            {"metric_slices": {"region": {"north": {"mae": "bad"}}}},
            "metric_slices.region.north.mae",
        ),
        ({"metrcs": {"mae": 1}}, "metrcs"),
        # A trailing newline passed the patterns' `$`: "mae\n" was stored beside "mae".
        ({"metrics": {"mae\n": 1.0}}, "metrics.mae\n"),
    ],
)
def test_register_invalid_field_is_400_naming_it(bearer, override, field):
    client, _ = bearer("registry:write")
    response = post(client, registration_body("2.1.0", **override))
    assert response.status_code == 400
    assert field in response.json()["fields"], response.json()
    assert not ModelVersion.objects.exists()


def test_register_list_metric_such_as_cluster_sizes_is_accepted(bearer):
    client, _ = bearer("registry:write")
    response = post(
        client,
        registration_body("1.0.0", metrics={"silhouette": 0.47, "cluster_sizes": [120, 80, 40]}),
        url="/api/v1/models/customer-segmentation/versions",
    )
    assert response.status_code == 201
    assert response.json()["tag"] == "segmentation-v1"
    assert response.json()["metrics"]["cluster_sizes"] == [120, 80, 40]


def test_register_without_token_is_refused(client):
    response = post(client, registration_body())
    assert response.status_code in (401, 403)
    assert "error" in response.json()
    assert not ModelVersion.objects.exists()


def test_register_with_read_scope_only_is_403_naming_the_scope(bearer):
    client, _ = bearer("registry:read")
    response = post(client, registration_body())
    assert response.status_code == 403
    assert "registry:write" in response.json()["error"]
    assert not ModelVersion.objects.exists()


def test_register_with_revoked_token_is_401(bearer):
    client, record = bearer("registry:write")
    apitoken_revoke(token=record, actor=CI)
    response = post(client, registration_body())
    assert response.status_code == 401
    assert not ModelVersion.objects.exists()


def test_register_by_session_needs_a_writer_role(client_for, make_user):
    auditor_client = client_for(make_user(Role.AUDITOR))
    assert post(auditor_client, registration_body()).status_code == 403
    assert not ModelVersion.objects.exists()


def test_models_list_shows_targets_and_latest(bearer, register):
    v1, v2 = register("1.0.0"), register("1.1.0")
    target_assign(version=v1, target="production", actor=CI)
    target_assign(version=v2, target="canary", actor=CI)
    client, _ = bearer("registry:read")
    data = client.get("/api/v1/models").json()
    assert data["count"] == 3
    forecasting = next(m for m in data["results"] if m["slug"] == "demand-forecasting")
    assert forecasting["targets"] == {"production": "1.0.0", "canary": "1.1.0"}
    assert forecasting["latest_version"] == "1.1.0"
    assert forecasting["versions_count"] == 2
    assert {m["slug"] for m in data["results"]} == {
        "demand-forecasting",
        "customer-segmentation",
        "product-recommendation",
    }


def test_reads_with_write_only_token_are_refused(bearer):
    client, _ = bearer("registry:write")
    response = client.get("/api/v1/models")
    assert response.status_code == 403
    assert "registry:read" in response.json()["error"]


def test_reads_by_session_need_a_role(client_for, outsider, auditor):
    assert client_for(outsider).get("/api/v1/models").status_code == 403
    response = client_for(auditor).get("/api/v1/models")
    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_versions_list_is_paginated_newest_semver_first(bearer, register):
    for number in ["1.0.0", "1.10.0", "1.2.0", "2.0.0"]:
        register(number)
    client, _ = bearer("registry:read")
    data = client.get(f"{URL}?limit=3").json()
    assert data["count"] == 4
    assert [v["version"] for v in data["results"]] == ["2.0.0", "1.10.0", "1.2.0"]
    assert data["next"] is not None
    rest = client.get(f"{URL}?limit=3&offset=3").json()
    assert [v["version"] for v in rest["results"]] == ["1.0.0"]


def test_versions_list_filters_by_state(bearer, register):
    register("1.0.0")
    production = register("1.1.0")
    target_assign(version=production, target="production", actor=CI)
    client, _ = bearer("registry:read")
    data = client.get(f"{URL}?state=production").json()
    assert [v["version"] for v in data["results"]] == ["1.1.0"]
    assert data["results"][0]["targets"] == ["production"]
    both = client.get(f"{URL}?state=production&state=registered").json()
    assert both["count"] == 2


def test_versions_list_unknown_state_is_400(bearer):
    client, _ = bearer("registry:read")
    response = client.get(f"{URL}?state=shipped")
    assert response.status_code == 400
    assert "state" in response.json()["fields"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("offset=-3", "offset"),
        ("offset=1.5", "offset"),
    ],
)
def test_list_malformed_pagination_is_400_naming_the_parameter(bearer, query, field):
    """DRF would silently fall back to its defaults; every API list refuses instead."""
    client, _ = bearer("registry:read")
    for url in (URL, "/api/v1/models"):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400
        assert list(response.json()["fields"]) == [field]


def test_versions_list_unknown_model_is_404_json(bearer):
    client, _ = bearer("registry:read")
    response = client.get("/api/v1/models/churn/versions")
    assert response.status_code == 404
    assert response.json()["error"]


def test_version_detail_returns_lineage(bearer, register):
    register("1.0.0")
    client, _ = bearer("registry:read")
    data = client.get(f"{URL}/1.0.0").json()
    assert data["data_version"] == registration_body("1.0.0")["data_version"]
    assert data["image_digest"].startswith("sha256:")
    assert data["hyperparameters"] == {"learning_rate": 0.03, "num_leaves": 63}
    assert client.get(f"{URL}/9.9.9").status_code == 404


def test_card_json_lists_sections_and_missing(bearer, register):
    register("1.0.0")
    client, _ = bearer("registry:read")
    data = client.get(f"{URL}/1.0.0/card").json()
    assert data["complete"] is False
    assert [s["key"] for s in data["sections"]][:3] == [
        "model_details",
        "intended_use",
        "data_schema",
    ]
    assert "performance" not in data["missing_sections"]
    assert "fairness_assessment" in data["missing_sections"]
    performance = next(s for s in data["sections"] if s["key"] == "performance")
    assert performance["data"]["metrics"]["mae"] == 350.5


def _count_queries(client, url):
    client.get(url)  # the token's first use of the minute records last_used_at
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_versions_list_query_count_does_not_grow(bearer, register):
    client, _ = bearer("registry:read")
    for n in range(2):
        register(f"1.{n}.0")
    small = _count_queries(client, URL)
    for n in range(2, 12):
        register(f"1.{n}.0")
    assert _count_queries(client, URL) == small


def test_models_list_query_count_does_not_grow(bearer, register):
    client, _ = bearer("registry:read")
    register("1.0.0")
    small = _count_queries(client, "/api/v1/models")
    for n in range(5):
        RegisteredModel.objects.create(slug=f"extra-{n}", name=f"Extra {n}", kind="forecasting")
        register("1.0.0", model=f"extra-{n}")
        register("1.1.0", model=f"extra-{n}")
    assert _count_queries(client, "/api/v1/models") == small


def test_openapi_schema_documents_the_registry(client_for, auditor):
    response = client_for(auditor).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for path in [
        "/api/v1/models",
        "/api/v1/models/{model}/versions",
        "/api/v1/models/{model}/versions/{version}",
        "/api/v1/models/{model}/versions/{version}/card",
    ]:
        assert path in text
    assert "versions_register" in text
    assert "RegistrationConflict" in text


# --- values the database or the hashing would rewrite or refuse ----------------------


@pytest.mark.parametrize(
    "metrics",
    [{"mae": 1e300}, {"mae": 1e16, "mape": -0.0}, {"mae": 2.5e-300}, {"sizes": [1e20, 3]}],
)
def test_register_same_body_twice_is_200_for_numbers_the_database_rewrites(bearer, metrics):
    """jsonb gives 1e300 back as an exact integer and -0.0 as 0.0: the second identical
    registration still compares equal (200, not 409), and the ledger verifies."""
    client, _ = bearer("registry:write")
    first = post(client, registration_body("2.1.0", metrics=metrics))
    assert first.status_code == 201, first.json()
    again = post(client, registration_body("2.1.0", metrics=metrics))
    assert again.status_code == 200, again.json()
    assert again.json()["registration_digest"] == first.json()["registration_digest"]
    assert audit_chain_verify().ok


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('"metrics": {"mae": 1' + "0" * 399 + "}", "metrics.mae"),
        ('"hyperparameters": {"alpha": 1e999}', "hyperparameters.alpha"),
        ('"hyperparameters": {"layers": [64, 32, -1e999]}', "hyperparameters.layers[2]"),
        ('"hyperparameters": {"note": "a\\u0000b"}', "hyperparameters.note"),
        ('"hyperparameters": {"note": "\\ud800"}', "hyperparameters.note"),
        ('"hyperparameters": {"deep": ' + "[" * 40 + "]" * 40 + "}", "hyperparameters.deep"),
        ('"tag": "v\\u0000"', "tag"),
    ],
)
def test_register_unstorable_value_is_400_naming_its_path(bearer, raw, field):
    """A value the database or the hashing cannot keep is refused where it sits in the
    body, never a 500 (OverflowError, jsonb refusing NUL or Infinity)."""
    client, _ = bearer("registry:write")
    body = json.dumps(registration_body("2.1.0", hyperparameters=None, tag=None))
    response = post(client, body[:-1] + ", " + raw + "}")
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    assert any(name.startswith(field) for name in fields), fields
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_register_nan_and_infinity_literals_are_400(bearer, literal):
    """Python's json reads these non-standard literals; the API refuses them."""
    client, _ = bearer("registry:write")
    body = json.dumps(registration_body("2.1.0", hyperparameters=None))
    response = post(client, body[:-1] + f', "hyperparameters": {{"x": {literal}}}}}')
    assert response.status_code == 400
    assert response.json()["error"].startswith("JSON parse error")


def test_register_body_nested_beyond_the_parser_is_400(bearer):
    """A body nested deeper than Python's recursion limit is a 400, not a 500."""
    client, _ = bearer("registry:write")
    response = post(client, '{"hyperparameters": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert response.status_code == 400
    assert response.json()["fields"] == {}


_metric_values = st.integers(min_value=-(10**30), max_value=10**30) | st.floats(
    allow_nan=False, allow_infinity=False
)
_metric_names = st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z")
_versions = itertools.count(1)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    metrics=st.dictionaries(_metric_names, _metric_values | st.lists(_metric_values, min_size=1)),
    hyperparameters=st.dictionaries(
        _metric_names,
        _metric_values
        | st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10
        ),
    ),
)
def test_register_same_body_twice_after_a_database_round_trip_is_not_a_conflict(
    db, metrics, hyperparameters
):
    """Property: for any numbers and text, the second registration of one body finds
    the stored version equal (200 from the API), and the ledger verifies."""
    body = registration_body(
        f"3.{next(_versions)}.0", metrics=metrics, hyperparameters=hyperparameters
    )
    first, created = version_register(model_slug="demand-forecasting", data=body, actor=CI)
    assert created
    again, created_again = version_register(model_slug="demand-forecasting", data=body, actor=CI)
    assert (again.pk, created_again) == (first.pk, False)
    assert audit_chain_verify().ok


@pytest.mark.parametrize(
    ("field", "limit"), [("tag", 100), ("artifact_uri", 500), ("code_version", 64)]
)
def test_register_too_long_text_is_400_naming_the_field(bearer, field, limit):
    """Text longer than its column is the field's 400, never a database error."""
    client, _ = bearer("registry:write")
    response = post(client, {**registration_body("2.1.0"), field: "a" * (limit + 1)})
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not ModelVersion.objects.filter(version="2.1.0").exists()


def test_validation_patterns_refuse_a_trailing_newline():
    """`$` also matches before a final newline; every pattern that validates a whole
    value ends in `\\Z`, so "value\\n" is refused where "value" is accepted."""
    from datasubjects.connectors import BQ_PROJECT, BQ_TABLE, IDENTIFIER
    from governance.services.registry import (
        GIT_SHA_RE,
        IMAGE_DIGEST_RE,
        METRIC_NAME_RE,
        SEMVER_RE,
    )
    from pipelines.cloud_storage import GS_URI
    from pipelines.lake import SNAPSHOT_ID_RE
    from pipelines.sources import BQ_URI, DVC_URI

    cases = [
        (SEMVER_RE, "2.1.0"),
        (IMAGE_DIGEST_RE, "sha256:" + "a" * 64),
        (GIT_SHA_RE, "abcdef1"),
        (METRIC_NAME_RE, "mae"),
        (IDENTIFIER, "customers"),
        (BQ_PROJECT, "my-project"),
        (BQ_TABLE, "sales.customers"),
        (GS_URI, "gs://bucket/x.csv"),
        (SNAPSHOT_ID_RE, "sha256:" + "b" * 64),
        (BQ_URI, "bq://project.dataset.table"),
        (DVC_URI, "dvc://https://git.example/data.git@v3:tx.csv"),
    ]
    for pattern, good in cases:
        assert pattern.match(good), pattern.pattern
        assert not pattern.match(good + "\n"), pattern.pattern

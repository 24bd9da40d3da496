"""Schemathesis against the portal's own OpenAPI schema: every operation is called with
generated data, valid and invalid, and must never answer 500, must answer what the
schema documents, must refuse calls without or with a bad token, and must refuse
invalid input with a 4xx.

The schema is loaded from the running application (the WSGI app, in process, on the
test database) with a real API token whose owner holds every role and the token every
scope, so each refusal is the API's own answer to the input, not to the caller. Seeded
data (a version with a card, a review, a training run) gives the generated calls real
rows to find."""

import os
from unittest import SkipTest

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from governance.choices import Target
from governance.models import RegisteredModel
from governance.reviews.choices import ReviewSource
from governance.reviews.services import review_open
from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun
from portal.accounts.choices import Role
from portal.apitokens.scopes import scopes_in_use
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.wsgi import application
from tests.factories import ModelVersionFactory

# Small enough that the whole test stays under a minute on two shared cores; set
# SCHEMATHESIS_MAX_EXAMPLES higher for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    ignored_auth,
    negative_data_rejection,
]


@pytest.fixture()
def seeded_paths(db, api_token_secret) -> dict[str, dict]:
    """Rows for the generated calls to find: a version with a card, a review of it
    waiting for the board, a finished training run. {path template: its parameters}."""
    model = RegisteredModel.objects.get(slug="demand-forecasting")
    version = ModelVersionFactory(model=model, version="2.1.0", version_minor=1)
    review, _ = review_open(
        version=version,
        target=Target.STAGING,
        requested_by_actor=Actor.system("ci"),
        source=ReviewSource.CI,
    )
    run = PipelineRun.objects.create(
        model=model,
        trigger=RunTrigger.MANUAL,
        state=RunState.SUCCEEDED,
        planned_version="2.1.0",
        version=version,
    )
    found = {"model": model.slug, "version": version.version}
    return {
        "/api/v1/gates/{model}/{version}/{target}": {**found, "target": Target.STAGING},
        "/api/v1/models/{model}/versions": {"model": model.slug},
        "/api/v1/models/{model}/versions/{version}": found,
        "/api/v1/models/{model}/versions/{version}/card": found,
        "/api/v1/reviews/{id}": {"id": review.pk},
        "/api/v1/pipelines/runs/{id}": {"id": run.pk},
    }


@pytest.fixture()
def api_token_secret(db, make_user) -> str:
    """A token with every scope an endpoint uses, owned by a person holding every role."""
    owner = make_user(*Role.values)
    issued = apitoken_create(
        name="schemathesis",
        owner=owner,
        scopes=scopes_in_use(),
        expires_at=None,
        actor=Actor.system("tests"),
    )
    return issued.secret


@pytest.fixture()
def _connection_kept():
    """The WSGI handler closes the database connection when a request ends, which
    would end the test's transaction; Django's own test client keeps it the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture()
def api_schema(api_token_secret, _connection_kept):
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json",
        application,
        headers={"Authorization": f"Bearer {api_token_secret}"},
    )
    return schema


def test_api_conforms_to_its_schema(api_schema, api_token_secret, seeded_paths):
    """Every documented operation, with valid and invalid generated input: no server
    error, documented status codes and bodies, auth enforced, invalid input refused.
    Operations with path parameters run twice: with generated ones (mostly unknown
    rows) and with the seeded rows' (so the answers about real rows are checked too).
    Every operation and mode runs; the failures are reported together."""
    auth = {"Authorization": f"Bearer {api_token_secret}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    assert set(seeded_paths) <= {operation.path for operation in operations}
    runs = [(operation, None) for operation in operations] + [
        (operation, seeded_paths[operation.path])
        for operation in operations
        if operation.path in seeded_paths
    ]
    for operation, path_parameters in runs:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

            @given(case=strategy)
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case):
                case.call_and_validate(headers=auth, checks=CHECKS)

            try:
                call()
            except (SkipTest, Unsatisfiable):
                # Nothing invalid to generate for an operation without (free) input.
                assert mode == GenerationMode.NEGATIVE, operation.label
                continue
            # Schemathesis raises its distinct failures as one group: keep each
            # operation's, so one run reports them all.
            except (AssertionError, FailureGroup) as error:
                seeded = " on seeded rows" if path_parameters else ""
                failures.append(f"{operation.label}{seeded} ({mode}):\n{error}")
    assert not failures, "\n\n".join(failures)


def test_schema_documents_every_refusal_with_the_error_shape(client, api_token_secret):
    """The schema names each refusal the API gives, with the one error body: 401 and
    403 on every operation that needs credentials, the 400 on blank or malformed input
    and the 404 on an unknown model where the API answers them."""
    schema = client.get(
        "/api/schema/?format=json", HTTP_AUTHORIZATION=f"Bearer {api_token_secret}"
    ).json()
    error = {"$ref": "#/components/schemas/Error"}
    assert schema["components"]["schemas"]["Error"]["required"] == ["error", "fields"]
    statuses = {}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            statuses[f"{method.upper()} {path}"] = set(operation["responses"])
            for status, response in operation["responses"].items():
                if status.startswith("4") and status != "403" and status != "409":
                    assert response["content"]["application/json"]["schema"] == error, (
                        method,
                        path,
                        status,
                    )
            if operation.get("security"):
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert {"400", "404"} <= statuses["POST /api/v1/models/{model}/versions"]
    assert {"400", "404"} <= statuses["GET /api/v1/models/{model}/versions"]
    assert {"400", "404"} <= statuses["POST /api/v1/reviews"]
    assert {"400", "404"} <= statuses["GET /api/v1/gates/{model}/{version}/{target}"]
    assert "400" in statuses["POST /api/v1/pipelines/runs"]
    assert "401" not in statuses["GET /.well-known/jwks.json"]  # public

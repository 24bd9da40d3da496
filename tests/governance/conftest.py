"""Fixtures for the registry and cards: registration bodies, registered versions, tokens."""

import hashlib
import importlib
from typing import Any

import pytest
from django.apps import apps

from governance.models import ModelVersion
from governance.services.registry import version_register
from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor

CI = Actor.system("tests")


def _hex(*parts: object, length: int = 64) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:length]


def registration_body(version: str = "1.0.0", **overrides: Any) -> dict[str, Any]:
    body = {
        "version": version,
        "artifact_uri": f"gs://zm-models/demand-forecasting/{version}/model",
        "image_uri": "europe-west1-docker.pkg.dev/zm-ml/serving/demand-forecasting",
        "image_digest": f"sha256:{_hex(version, 'image')}",
        "data_version": f"bq-snapshot-{_hex(version, 'data', length=12)}",
        "code_version": _hex(version, "code", length=40),
        "pipeline_run_id": f"run-{version}",
        "hyperparameters": {"learning_rate": 0.03, "num_leaves": 63},
        "metrics": {"mae": 350.5, "mape": 0.121, "rmse": 480.2},
        "metric_slices": {"region": {"north": {"mae": 360.0}, "south": {"mae": 340.0}}},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture()
def body():
    return registration_body


@pytest.fixture()
def register(db):
    """register("1.2.0", model="customer-segmentation", metrics={...}) -> ModelVersion"""

    def make(version: str = "1.0.0", model: str = "demand-forecasting", **overrides: Any):
        created, _ = version_register(
            model_slug=model, data=registration_body(version, **overrides), actor=CI
        )
        return ModelVersion.objects.select_related("model", "card").get(pk=created.pk)

    return make


@pytest.fixture()
def token(db, make_user):
    """token("registry:write", owner=None) -> (secret, ApiToken)

    The owner defaults to a data science lead, whose roles allow every scope: a token
    does only what its owner may.
    """

    def make(*scopes: str, owner=None):
        owner = owner or make_user(Role.DATA_SCIENCE_LEAD)
        issued = apitoken_create(
            name="ci", owner=owner, scopes=list(scopes), expires_at=None, actor=CI
        )
        return issued.secret, issued.token

    return make


@pytest.fixture()
def bearer(client, token):
    """bearer("registry:read") -> a client sending that token, plus the token record."""

    def make(*scopes: str, owner=None):
        secret, record = token(*scopes, owner=owner)
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        return client, record

    return make


@pytest.fixture()
def registry_defaults(transactional_db):
    """Transactional tests start with empty tables: the three models and the default
    review policies, as their data migrations create them."""
    importlib.import_module("governance.migrations.0002_the_three_models").create_models(apps, None)
    importlib.import_module("governance.reviews.migrations.0002_default_policies").create_defaults(
        apps, None
    )

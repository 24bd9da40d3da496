"""Fixtures for monitoring: registered versions through governance's own service."""

from typing import Any

import pytest

from governance.models import ModelVersion
from governance.services.registry import version_register
from portal.audit.actors import Actor
from tests.governance.conftest import registration_body

CI = Actor.system("tests")


@pytest.fixture()
def register(db):
    """register("1.2.0", model="customer-segmentation") -> ModelVersion"""

    def make(version: str = "1.0.0", model: str = "demand-forecasting", **overrides: Any):
        created, _ = version_register(
            model_slug=model, data=registration_body(version, **overrides), actor=CI
        )
        return ModelVersion.objects.select_related("model").get(pk=created.pk)

    return make

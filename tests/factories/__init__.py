"""factory_boy factories shared by every test, one module per app; the public names are
re-exported here (`from tests.factories import UserFactory, ModelVersionFactory`)."""

from tests.factories.accounts import DEFAULT_PASSWORD, UserFactory
from tests.factories.registry import FAIRNESS_DATA, ModelVersionFactory, RegisteredModelFactory

__all__ = [
    "DEFAULT_PASSWORD",
    "FAIRNESS_DATA",
    "ModelVersionFactory",
    "RegisteredModelFactory",
    "UserFactory",
]

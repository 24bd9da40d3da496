"""Governance models, one module per area, re-exported here.

registry: models, versions, target assignments, model cards.
"""

from governance.models.registry import (
    CardRevision,
    CardSection,
    ModelCard,
    ModelVersion,
    RegisteredModel,
    TargetAssignment,
)

__all__ = [
    "CardRevision",
    "CardSection",
    "ModelCard",
    "ModelVersion",
    "RegisteredModel",
    "TargetAssignment",
]

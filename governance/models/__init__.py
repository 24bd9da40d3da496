"""Governance models, one module per area, re-exported here.

registry: models, versions, target assignments, model cards.
"""

from governance.models.registry import (
    CARD_SECTION_LIST_MAX_CHARS,
    CARD_SECTION_MAX_CHARS,
    MODEL_DESCRIPTION_MAX_CHARS,
    CardRevision,
    CardSection,
    ModelCard,
    ModelVersion,
    RegisteredModel,
    TargetAssignment,
)

__all__ = [
    "CARD_SECTION_LIST_MAX_CHARS",
    "CARD_SECTION_MAX_CHARS",
    "MODEL_DESCRIPTION_MAX_CHARS",
    "CardRevision",
    "CardSection",
    "ModelCard",
    "ModelVersion",
    "RegisteredModel",
    "TargetAssignment",
]

"""The three model kinds, by the names the portal uses (`governance.choices.ModelKind`);
the models' slugs are accepted too."""

from pipelines.kinds.base import ComparisonRule, Evaluation, ModelKindPipeline, Settings
from pipelines.kinds.forecasting import ForecastingPipeline
from pipelines.kinds.recommendation import RecommendationPipeline
from pipelines.kinds.segmentation import SegmentationPipeline

KINDS: dict[str, ModelKindPipeline] = {
    kind.kind: kind
    for kind in (ForecastingPipeline(), SegmentationPipeline(), RecommendationPipeline())
}
ALIASES = {
    "demand-forecasting": "forecasting",
    "customer-segmentation": "segmentation",
    "product-recommendation": "recommendation",
}


def kind_for(name: str) -> ModelKindPipeline:
    """The kind for `forecasting` (or the slug `demand-forecasting`), and so on."""
    key = ALIASES.get(name, name)
    if key not in KINDS:
        raise ValueError(
            f"unknown model kind {name!r}; known: {sorted(KINDS)} or {sorted(ALIASES)}"
        )
    return KINDS[key]


__all__ = [
    "ALIASES",
    "KINDS",
    "ComparisonRule",
    "Evaluation",
    "ModelKindPipeline",
    "Settings",
    "kind_for",
]

"""Production's metrics to compare a version with, like for like where an app above the
registry measured them.

Recorded metrics of two versions come from different data and compare only roughly. A
training run that produced a version also scores production on the version's own
held-out data; training hands that comparison over by registering a provider here in
its AppConfig.ready(), so the review checks and the version page read it without
reading training's tables (the registry and the review board sit below training).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from governance.models import ModelVersion
from governance.selectors.registry import production_version

# (version, production) -> (production's metrics, a sentence saying where they come
# from), or None when the provider has nothing like for like.
BaselineProvider = Callable[..., tuple[dict[str, Any], str] | None]

_providers: list[BaselineProvider] = []


def baseline_provider_register(provider: BaselineProvider) -> None:
    """Register `provider(*, version, production)` (once; called from AppConfig.ready())."""
    if provider not in _providers:
        _providers.append(provider)


def production_baseline(
    *, version: ModelVersion, production: ModelVersion
) -> tuple[dict[str, Any], str] | None:
    """Production's metrics measured on `version`'s own held-out data, with a sentence
    saying so, from the first provider that has them; None otherwise."""
    for provider in _providers:
        found = provider(version=version, production=production)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class ProductionComparison:
    """What a version is compared with: production, the metrics used for it, and a
    sentence saying where they come from (`like_for_like` when measured on the same
    data as the version's own)."""

    production: ModelVersion
    metrics: dict[str, Any]
    basis: str
    like_for_like: bool


def production_comparison(*, version: ModelVersion) -> ProductionComparison | None:
    """The one comparison with production that every page and check shows for
    `version`: production rescored on `version`'s held-out data when a provider has
    it, production's registered metrics otherwise; None when no other version serves
    production."""
    production = production_version(model=version.model)
    if production is None or production.pk == version.pk:
        return None
    rescored = production_baseline(version=version, production=production)
    if rescored is not None:
        metrics, basis = rescored
        return ProductionComparison(
            production=production, metrics=metrics, basis=basis, like_for_like=True
        )
    return ProductionComparison(
        production=production,
        metrics=production.metrics or {},
        basis=(
            f"the metrics production {production.version} recorded at its own "
            "registration, on its own evaluation data: indicative only"
        ),
        like_for_like=False,
    )

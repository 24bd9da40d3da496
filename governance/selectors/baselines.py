"""Production's metrics to compare a version with, like for like where an app above the
registry measured them.

Recorded metrics of two versions come from different data and compare only roughly. A
training run that produced a version also scores production on the version's own
held-out data; training hands that comparison over by registering a provider here in
its AppConfig.ready(), so the review checks and the version page read it without
reading training's tables (the registry and the review board sit below training).
"""

from collections.abc import Callable
from typing import Any

from governance.models import ModelVersion

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

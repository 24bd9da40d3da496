"""Flags about data subjects on a model version's page, from the app that knows
(datasubjects), which registers a provider in its AppConfig.ready().

A flag is one sentence and a link: e.g. that the version was trained on a snapshot
holding a person whose erasure was requested, naming the request by its public id.
"""

from collections.abc import Callable
from dataclasses import dataclass

from governance.models import ModelVersion


@dataclass(frozen=True)
class VersionSubjectFlag:
    """`text` says what concerns the version; `url` where to read more ("" if none)."""

    text: str
    url: str = ""


# (*, version) -> flags about that version.
FlagProvider = Callable[..., list[VersionSubjectFlag]]

_providers: list[FlagProvider] = []


def version_subject_flag_provider_register(provider: FlagProvider) -> None:
    """Register `provider(*, version)` (once; called from AppConfig.ready())."""
    if provider not in _providers:
        _providers.append(provider)


def version_subject_flags(*, version: ModelVersion) -> list[VersionSubjectFlag]:
    """Every registered provider's flags about `version`, in registration order."""
    flags: list[VersionSubjectFlag] = []
    for provider in _providers:
        flags.extend(provider(version=version))
    return flags

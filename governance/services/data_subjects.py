"""What training must leave out of a snapshot for data subjects' rights, asked of the
app that knows (datasubjects) without the registry or training importing it.

The data subjects app registers a writer in its AppConfig.ready(); before a run takes
its snapshot, the runner asks `training_suppression_list()` for the file to hand the
pipeline (`pipelines.suppression`): the local runner passes its path and the hashing
key (`training_suppression_key()`), the Vertex AI runner uploads it beside the run's
artifacts and passes the `gs://` URI (the job reads the key from Secret Manager). No
writer registered: nobody is left out.
"""

from collections.abc import Callable
from pathlib import Path

# (*, purpose) -> the path of the suppression list file just written for that run.
SuppressionWriter = Callable[..., Path]

_writers: list[SuppressionWriter] = []
_key_providers: list[Callable[[], bytes]] = []


def training_suppression_writer_register(writer: SuppressionWriter) -> None:
    """Register `writer(*, purpose)` (once; called from AppConfig.ready())."""
    if writer not in _writers:
        _writers.append(writer)


def training_suppression_key_register(provider: Callable[[], bytes]) -> None:
    """Register the provider of the list's hashing key (once; from AppConfig.ready())."""
    if provider not in _key_providers:
        _key_providers.append(provider)


def training_suppression_key() -> bytes | None:
    """The list's hashing key, for a run in this process (the local runner); None when
    no app keeps a list. A secret: never put it in a run's parameters or logs."""
    for provider in _key_providers:
        return provider()
    return None


def training_suppression_list(*, purpose: str) -> Path | None:
    """Write the suppression list for a training run now and return its path; None
    when no app keeps one. `purpose` names the run for the writer's audit event.

    Side effects: those of the registered writer (a file, an audit event).
    """
    for writer in _writers:
        return writer(purpose=purpose)
    return None

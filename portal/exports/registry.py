"""The kinds of export the apps offer. The base knows none of them: an app registers
its kinds in its AppConfig.ready() (governance: the card PDF; the audit trail later:
evidence packs), saying how to make the file and who may read it."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    filename: str
    content_type: str


class ExportProgress(Protocol):
    def __call__(self, percent: int, message: str) -> None: ...


@dataclass(frozen=True)
class ExportKind:
    name: str  # "<app>.<thing>", stored on the job
    label: str
    # Makes the file from the job's parameters, reporting progress as it goes.
    produce: Callable[[dict[str, Any], ExportProgress], ExportFile]
    # Whether this person may read what the export contains (and so see the job).
    may_read: Callable[[Any, dict[str, Any]], bool]
    # Where the thing exported lives in the portal, for the job page's link back.
    source_url: Callable[[dict[str, Any]], str] = lambda params: ""


_KINDS: dict[str, ExportKind] = {}


def export_kind_register(kind: ExportKind) -> None:
    _KINDS[kind.name] = kind


def export_kind_get(name: str) -> ExportKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"No export kind {name!r} is registered.") from None

"""The kinds of governance change, registered by the apps that own what they change.

The base knows no app: governance registers its policy changes in its
`AppConfig.ready()`, accounts its role grants, and `portal.changes.configuration`
the settings read from the environment. A kind says how to apply an approved change;
whether a change needs a second person at all is decided by the service that proposes
it, next to the data it understands.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ChangeKind:
    """`apply(change=..., actor=...)` runs inside the approval's transaction, after the
    request's row lock: it locks its own target rows, checks that `change.before` still
    describes them (ValidationError if not: the approval is refused) and makes the
    change, auditing it as `actor`."""

    name: str
    label: str
    apply: Callable[..., None]


_KINDS: dict[str, ChangeKind] = {}


def change_kind_register(kind: ChangeKind) -> None:
    _KINDS[kind.name] = kind


def change_kind_get(name: str) -> ChangeKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"no change kind {name!r} is registered") from None


def change_kind_label(name: str) -> str:
    kind = _KINDS.get(name)
    return kind.label if kind else name

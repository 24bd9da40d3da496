"""The routing document: which versions of which model serve, and the canary's share.

A JSON file, written whole and renamed into place (readers never see half a document),
re-read by the server when its modification time or size changes:

    {"revision": 7,
     "models": {"demand-forecasting": {
        "kind": "forecasting",
        "stable": {"version": "1.0.0", "artifact": "file:///.../"},
        "canary": {"version": "1.1.0", "artifact": "file:///.../", "weight": 10},
        "faults": {"1.1.0": {"error_rate": 0.5, "delay_ms": 0}}}}}

Writers that change part of it (the local rollout backend, the traffic simulator's
fault injection) go through `routing_update`, which holds an exclusive lock on a
sidecar `.<name>.lock` file from reading to writing, so neither loses the other's change.

`canary` is absent when one version serves everything. `faults` injects errors or delay
into one version's answers; the server only honours it when started with faults allowed
(tests, the demo and the traffic simulator's scenarios), never in production.
"""

import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("forecasting", "segmentation", "recommendation")
MODEL_KINDS = {
    "demand-forecasting": "forecasting",
    "customer-segmentation": "segmentation",
    "product-recommendation": "recommendation",
}


class RoutingError(ValueError):
    """The routing document is not valid; the message names the offending entry."""


@dataclass(frozen=True)
class Track:
    version: str
    artifact: str
    weight: int = 100  # share of keyed traffic in percent (the stable track gets the rest)


@dataclass(frozen=True)
class Fault:
    error_rate: float = 0.0
    delay_ms: int = 0


@dataclass(frozen=True)
class ModelRoute:
    model: str
    kind: str
    stable: Track
    canary: Track | None = None
    faults: Mapping[str, Fault] = field(default_factory=dict)

    def tracks(self) -> list[tuple[str, Track]]:
        out = [("stable", self.stable)]
        if self.canary is not None:
            out.append(("canary", self.canary))
        return out


@dataclass(frozen=True)
class Routing:
    revision: int
    models: Mapping[str, ModelRoute]

    def to_dict(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for slug, route in self.models.items():
            entry: dict[str, Any] = {
                "kind": route.kind,
                "stable": {"version": route.stable.version, "artifact": route.stable.artifact},
            }
            if route.canary is not None:
                entry["canary"] = {
                    "version": route.canary.version,
                    "artifact": route.canary.artifact,
                    "weight": route.canary.weight,
                }
            if route.faults:
                entry["faults"] = {
                    v: {"error_rate": f.error_rate, "delay_ms": f.delay_ms}
                    for v, f in route.faults.items()
                }
            models[slug] = entry
        return {"revision": self.revision, "models": models}


def _track(raw: Any, where: str, *, canary: bool) -> Track:
    if not isinstance(raw, dict):
        raise RoutingError(f"{where} must be an object")
    version, artifact = raw.get("version"), raw.get("artifact")
    if not isinstance(version, str) or not version:
        raise RoutingError(f"{where}.version must be a non-empty string")
    if not isinstance(artifact, str) or not artifact:
        raise RoutingError(f"{where}.artifact must be a non-empty string")
    weight = raw.get("weight", 0 if canary else 100)
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
        raise RoutingError(f"{where}.weight must be a whole number from 0 to 100")
    return Track(version=version, artifact=artifact, weight=weight)


def routing_from_dict(raw: Any) -> Routing:
    """Parse and check a routing document."""
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
        raise RoutingError("the routing document must be an object with a models object")
    revision = raw.get("revision", 0)
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise RoutingError("revision must be a whole number")
    models: dict[str, ModelRoute] = {}
    for slug, entry in raw["models"].items():
        if not isinstance(entry, dict):
            raise RoutingError(f"models.{slug} must be an object")
        kind = entry.get("kind", MODEL_KINDS.get(slug))
        if kind not in KINDS:
            raise RoutingError(f"models.{slug}.kind must be one of {', '.join(KINDS)}")
        stable = _track(entry.get("stable"), f"models.{slug}.stable", canary=False)
        canary = None
        if entry.get("canary") is not None:
            canary = _track(entry["canary"], f"models.{slug}.canary", canary=True)
            if canary.version == stable.version:
                raise RoutingError(f"models.{slug}.canary must differ from the stable version")
        faults = {}
        for version, fault in (entry.get("faults") or {}).items():
            try:
                faults[version] = Fault(
                    error_rate=float(fault.get("error_rate", 0.0)),
                    delay_ms=int(fault.get("delay_ms", 0)),
                )
            except (AttributeError, TypeError, ValueError):
                raise RoutingError(f"models.{slug}.faults.{version} is not valid") from None
        models[slug] = ModelRoute(
            model=slug, kind=kind, stable=stable, canary=canary, faults=faults
        )
    return Routing(revision=revision, models=models)


def routing_read(path: str | Path) -> Routing:
    """The routing document at `path` (an empty routing when the file does not exist)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return Routing(revision=0, models={})
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise RoutingError(f"the routing document is not JSON: {error}") from None
    return routing_from_dict(raw)


def routing_write(path: str | Path, routing: Routing) -> None:
    """Write the document atomically: a temporary file in the same folder, renamed over
    the old one, so the server never reads half a document."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{uuid.uuid4().hex}.partial"
    partial.write_text(json.dumps(routing.to_dict(), indent=2, sort_keys=True))
    os.replace(partial, target)


@contextmanager
def _routing_locked(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of the routing document at `target` (a sidecar file,
    kept: removing it would let two writers lock different files)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def routing_update(
    path: str | Path, change: Callable[[Routing], Mapping[str, ModelRoute] | None]
) -> Routing:
    """Read the document at `path`, give it to `change`, and write a new revision with
    the models it returns (None or the same models: nothing written), all under the
    document's lock, so concurrent writers each see the other's last change. Returns
    the document as it now is. RoutingError when the stored document is not valid."""
    target = Path(path)
    with _routing_locked(target):
        routing = routing_read(target)
        models = change(routing)
        if models is None or dict(models) == dict(routing.models):
            return routing
        updated = Routing(revision=routing.revision + 1, models=dict(models))
        routing_write(target, updated)
        return updated

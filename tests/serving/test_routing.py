"""Concurrent writers of the routing document (the rollout backend, the traffic
simulator's faults) never lose each other's change."""

import threading
import time

from serving.routing import Fault, ModelRoute, Routing, Track, routing_read, routing_update

WRITERS = 6
CHANGES_EACH = 5


def _route(slug: str) -> ModelRoute:
    return ModelRoute(model=slug, kind="forecasting", stable=Track("1.0.0", "file:///m/"))


def test_concurrent_updates_each_see_the_last_change(tmp_path):
    """Writers that read, pause, then write (as a backend waiting on nothing would) all
    land: every change is in the document and each made its own revision."""
    path = tmp_path / "routing.json"

    def writer(number: int) -> None:
        for change in range(CHANGES_EACH):
            slug = f"model-{number}-{change}"

            def add(routing: Routing, slug: str = slug) -> dict[str, ModelRoute]:
                time.sleep(0.002)  # between read and write: where a lost update happens
                return {**routing.models, slug: _route(slug)}

            routing_update(path, add)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    final = routing_read(path)
    assert len(final.models) == WRITERS * CHANGES_EACH
    assert final.revision == WRITERS * CHANGES_EACH


def test_an_update_that_changes_nothing_writes_no_revision(tmp_path):
    """Returning the same models (or None) leaves the document and its revision alone."""
    path = tmp_path / "routing.json"
    first = routing_update(path, lambda routing: {"demand-forecasting": _route("d")})
    assert first.revision == 1
    assert routing_update(path, lambda routing: dict(routing.models)).revision == 1
    assert routing_update(path, lambda routing: None).revision == 1
    faulted = routing_update(
        path,
        lambda routing: {
            "demand-forecasting": ModelRoute(
                "d", "forecasting", Track("1.0.0", "file:///m/"), None, {"1.0.0": Fault(0.5)}
            )
        },
    )
    assert faulted.revision == 2
    assert routing_read(path).models["demand-forecasting"].faults == {"1.0.0": Fault(0.5)}

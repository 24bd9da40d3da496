"""`manage.py simulate_traffic`: realistic requests to the model server at a given
rate for a bounded time, and the ground truth that answers them.

Requests come from the lake's sample data (`pipelines.traffic`); every answered
forecast or recommendation gets an outcome line, joined later with the server's
prediction log by request id:

    <outcome dir>/<model>/<YYYY-MM-DD>.jsonl
    {"ts": RFC 3339 UTC, "request_id": ..., "model": ..., "actual": ...}

`actual` is the daily units of the forecast week (`[{"date", "units"}]`) for
forecasts, and `{"clicked": [...], "purchased": [...], "revenue": {product: amount}}`
for recommendations (clicked: recommended items the customer bought later, and a few
browsed without buying). Segments have no later truth.

Scenarios:
  healthy        the sample data as it is
  canary-errors  the canary answers half its requests with an error (injected fault)
  latency        the canary answers 400 ms slower (injected fault)
  drift          the inputs shift (dearer baskets, deeper discounts, thin histories)

The two canary scenarios write a fault into the routing document for the run and take
it out afterwards, also when a rollout rolled the canary back or promoted it meanwhile;
the server honours it only when started with `--allow-faults`.

A caller in the same process (`call_command`) may also pass `stop`, a threading.Event:
sending ends when it is set or when `--duration` runs out, whichever comes first, and
an injected fault is taken out either way.
"""

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from serving.routing import MODEL_KINDS, Fault, ModelRoute, Routing, routing_update

SCENARIOS = ("healthy", "canary-errors", "latency", "drift")
FAULTS = {"canary-errors": Fault(error_rate=0.5), "latency": Fault(delay_ms=400)}
MAX_DURATION = 24 * 3600


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OutcomeWriter:
    """Appends outcome lines per model and UTC day; one lock, whole lines."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.written = 0

    def write(self, *, model: str, request_id: str, actual: Any) -> None:
        now = datetime.now(UTC)
        path = self.root / model / f"{now.date().isoformat()}.jsonl"
        line = json.dumps(
            {"ts": _rfc3339(now), "request_id": request_id, "model": model, "actual": actual},
            separators=(",", ":"),
        )
        with self.lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
            self.written += 1


def _faults_inject(routing_path: Path, models: list[str], fault: Fault) -> dict[str, str]:
    """Put `fault` on the canary of each of `models` that has one and write a new
    revision; {model slug: the canary version faulted} (empty: nothing written)."""
    injected: dict[str, str] = {}

    def change(routing: Routing) -> dict[str, ModelRoute] | None:
        injected.clear()
        injected.update(
            {
                slug: route.canary.version
                for slug, route in routing.models.items()
                if slug in models and route.canary is not None
            }
        )
        if not injected:
            return None
        return {
            slug: replace(route, faults={**route.faults, injected[slug]: fault})
            if slug in injected
            else route
            for slug, route in routing.models.items()
        }

    routing_update(routing_path, change)
    return injected


def _faults_remove(routing_path: Path, injected: dict[str, str]) -> None:
    """Take out the faults `_faults_inject` put in, by model and version, whatever the
    routing looks like now: a rollout may have been rolled back or promoted meanwhile,
    and a fault left on the withdrawn or promoted version would come back with it.
    Writes a new revision only when something changes."""

    def change(routing: Routing) -> dict[str, ModelRoute]:
        models = dict(routing.models)
        for slug, route in routing.models.items():
            version = injected.get(slug)
            if version is not None and version in route.faults:
                faults = {v: f for v, f in route.faults.items() if v != version}
                models[slug] = replace(route, faults=faults)
        return models

    routing_update(routing_path, change)


class Command(BaseCommand):
    help = "Send realistic traffic to the model server and write its ground truth outcomes."
    # call_command(..., stop=threading.Event()): no command-line option.
    stealth_options = ("stop",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model",
            action="append",
            choices=sorted(MODEL_KINDS),
            help="a model slug (repeat for more); default: all three",
        )
        parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds")
        parser.add_argument("--scenario", choices=SCENARIOS, default="healthy")
        parser.add_argument("--server", default=settings.SERVING_URL)
        parser.add_argument("--routing", default=str(settings.SERVING_ROUTING_FILE))
        parser.add_argument("--outcome-dir", default=str(settings.MONITORING_OUTCOME_DIR))
        parser.add_argument("--snapshot", default=None, help="lake snapshot id; default newest")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        from pipelines.lake import SnapshotNotFound, open_snapshot  # -- slow
        from pipelines.traffic import (  # -- slow
            drifted,
            recommendation_outcome,
            traffic_cases,
        )

        rate, duration = options["rate"], options["duration"]
        if not 0 < rate <= 1000:
            raise CommandError("--rate must be above 0 and at most 1000 requests per second.")
        if not 0 < duration <= MAX_DURATION:
            raise CommandError(f"--duration must be above 0 and at most {MAX_DURATION} s.")
        # numpy's generators take only non-negative seeds; a negative one failed deep inside.
        if options["seed"] < 0:
            raise CommandError("--seed must be 0 or more.")
        models = options["model"] or sorted(MODEL_KINDS)
        scenario = options["scenario"]
        try:
            snapshot = open_snapshot(
                root=settings.PIPELINES_LAKE_ROOT, snapshot_id=options["snapshot"]
            )
        except SnapshotNotFound as error:
            raise CommandError(str(error)) from None
        kinds = {slug: MODEL_KINDS[slug] for slug in models}
        tables = snapshot.load(
            ["transactions", "products", "categories", "promotions", "customers"]
        )
        cases = traffic_cases(tables, kinds=sorted(set(kinds.values())), seed=options["seed"])
        rng = np.random.default_rng(options["seed"])
        writer = OutcomeWriter(Path(options["outcome_dir"]))
        routing_path = Path(options["routing"])
        fault = FAULTS.get(scenario)
        if fault is not None:
            injected = _faults_inject(routing_path, models, fault)
            if not injected:
                raise CommandError(
                    f"The {scenario} scenario needs a canary: none of {', '.join(models)} "
                    "has one in the routing document. Start a canary rollout first."
                )
            self.stdout.write(f"Fault {fault} on the canary of {', '.join(injected)}")
            time.sleep(1.0)  # the server re-reads the routing document within its poll
        counts: Counter[tuple[str, int | str]] = Counter()
        counts_lock = threading.Lock()
        local = threading.local()  # one HTTP session per sending thread
        server = options["server"].rstrip("/")

        def send(slug: str, body: dict[str, Any], actual: Any, click_draws: Any) -> None:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            try:
                answer = local.session.post(
                    f"{server}/v1/models/{slug}/predict", json=body, timeout=30
                )
                status: int | str = answer.status_code
            except requests.RequestException as error:
                status = type(error).__name__
                answer = None
            with counts_lock:
                counts[(slug, status)] += 1
            if answer is None or status != 200 or actual is None:
                return
            reply = answer.json()
            if MODEL_KINDS[slug] == "recommendation":
                actual = recommendation_outcome(actual, reply["items"], click_draws)
            writer.write(model=slug, request_id=reply["request_id"], actual=actual)

        stop: threading.Event = options.get("stop") or threading.Event()
        interval = 1.0 / rate
        started = time.monotonic()
        sent = 0
        workers = max(2, min(32, int(rate)))
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                while True:
                    due = started + sent * interval
                    if due - started >= duration or stop.is_set():
                        break
                    wait = due - time.monotonic()
                    # Pacing the requests at the asked rate, until told to stop.
                    if wait > 0 and stop.wait(wait):
                        break
                    slug = models[sent % len(models)]
                    pool_of = cases.by_kind[kinds[slug]]
                    case = pool_of[int(rng.integers(len(pool_of)))]
                    body = case.body
                    if scenario == "drift":
                        body = drifted(kinds[slug], body, rng)
                    pool.submit(send, slug, body, case.actual, rng.random(100))
                    sent += 1
        finally:
            if fault is not None:
                _faults_remove(routing_path, injected)
        elapsed = time.monotonic() - started
        for (slug, status), count in sorted(counts.items(), key=str):
            self.stdout.write(f"{slug}: {count} answered {status}")
        self.stdout.write(
            f"{sent} requests in {elapsed:.1f} s ({scenario}); "
            f"{writer.written} outcomes under {writer.root}"
        )

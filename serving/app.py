"""The HTTP face of the model server (FastAPI), its metrics and the routing watcher.

Routes:
    POST /v1/models/{model}/predict                    the stable/canary split, sticky by key
    POST /v1/models/{model}/versions/{version}/predict pinned to one serving version
    GET  /v1/models/{model}                            what serves now, and the split
    GET  /healthz   alive          GET /readyz   503 while a routing change is loading
    GET  /metrics   Prometheus

Every prediction answer carries a `request_id` (also in the `X-Request-ID` header);
with a prediction log folder set, each answered prediction is appended to the log under
that id (`serving.prediction_log`), off the request's path.

A routing change never drops a request: the watcher loads every version the new
document names while the old one keeps answering, then swaps one reference. A request
holds the snapshot it started with until it ends.
"""

import asyncio
import json
import random
import threading
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from serving.prediction_log import PredictionLog, request_id_new
from serving.predictors import PREDICTORS, InputError, Predictor, predictor_load
from serving.routing import ModelRoute, Routing, RoutingError, Track, routing_read
from serving.suppression import SuppressionWatch

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The largest prediction request (a recommendation with 1,000 purchases) is about
# 100 kB; a larger body is refused before it is read whole into memory.
MAX_BODY_BYTES = 1_000_000
VALUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "version", "track")
        self.requests = Counter(
            "serving_requests",
            "Prediction requests by outcome (ok, invalid, error)",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serving_request_duration_seconds",
            "Time to answer a prediction request",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prediction = Histogram(
            "serving_prediction",
            "Distribution of predicted values (units per day, segment, item popularity)",
            labels,
            buckets=VALUE_BUCKETS,
            registry=self.registry,
        )
        self.feature = Histogram(
            "serving_input_feature",
            "Distribution of input features, the raw material of drift monitoring",
            [*labels, "feature"],
            buckets=VALUE_BUCKETS,
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "serving_model_load_seconds",
            "Time the version took to load",
            ("model", "version"),
            registry=self.registry,
        )
        self.ready = Gauge(
            "serving_ready", "1 when every routed version is loaded", [], registry=self.registry
        )
        self.revision = Gauge(
            "serving_routing_revision", "Revision of the routing served", [], registry=self.registry
        )


@dataclass(frozen=True)
class Served:
    """One routing document with its loaded versions; replaced whole, never changed."""

    routing: Routing
    predictors: dict[tuple[str, str], Predictor] = field(default_factory=dict)


class RoutingWatcher:
    """Re-reads the routing document when it changes and swaps in the loaded result."""

    def __init__(self, path: Path, metrics: Metrics, *, poll_seconds: float = 0.2) -> None:
        self.path = path
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.served = Served(routing=Routing(revision=0, models={}))
        self.loading = False
        self.last_error: str | None = None
        self._stamp: tuple[float, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def check(self) -> None:
        """Load the document if it changed since the last look."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self.loading = True
        self.metrics.ready.set(0)
        try:
            routing = routing_read(self.path)
            predictors: dict[tuple[str, str], Predictor] = {}
            loaded = {(p.artifact, key[0]): p for key, p in self.served.predictors.items()}
            for slug, route in routing.models.items():
                for _track_name, track in route.tracks():
                    predictor = loaded.get((track.artifact, slug))
                    if predictor is None:
                        predictor = predictor_load(kind=route.kind, artifact=track.artifact)
                        self.metrics.load_seconds.labels(slug, track.version).set(
                            predictor.load_seconds
                        )
                    predictors[(slug, track.version)] = predictor
            self.served = Served(routing=routing, predictors=predictors)
            self.metrics.revision.set(routing.revision)
            self.last_error = None
        except (RoutingError, OSError, ValueError) as error:
            # Keep serving the last good document; readiness stays false until a good
            # one arrives, so the rollout backend sees the change did not take.
            self.last_error = str(error)
            self._stamp = stamp
            self.loading = False
            return
        self._stamp = stamp
        self.loading = False
        self.metrics.ready.set(1)

    def ready(self) -> bool:
        return not self.loading and self.last_error is None and self._stamp == self._file_stamp()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()

    def start(self) -> None:
        self.check()
        self._thread = threading.Thread(target=self._run, name="routing-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def error_body(message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": message, "fields": fields or {}}


def _fields_of(error: ValidationError | RequestValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ()) if part != "body"]
        fields.setdefault(".".join(loc) or "body", []).append(item.get("msg", "invalid"))
    return fields


def track_for(route: ModelRoute, key: str | None) -> tuple[str, Track]:
    """The track a request goes to: by a hash of its key, so a customer (or a category
    and store) stays on one version while the weight stays the same, and moves only one
    way when it grows; at random without a key."""
    if route.canary is None or route.canary.weight == 0:
        return "stable", route.stable
    bucket = zlib.crc32(key.encode()) % 100 if key else random.randrange(100)  # noqa: S311  # nosec B311  # traffic split, not security
    if bucket < route.canary.weight:
        return "canary", route.canary
    return "stable", route.stable


def create_app(
    *,
    routing_path: str | Path,
    allow_faults: bool = False,
    poll_seconds: float = 0.2,
    prediction_log_dir: str | Path | None = None,
    suppression_list: str | Path | None = None,
) -> FastAPI:
    """The server for the routing document at `routing_path`. `allow_faults` honours
    the document's injected faults (tests, demo, traffic scenarios only). With
    `prediction_log_dir`, answered predictions are logged there (none when unset).
    Customers on the `suppression_list` file (written by the portal) get the default
    segment and non-personalised recommendations."""
    metrics = Metrics()
    suppression = SuppressionWatch(suppression_list, metrics.registry)
    watcher = RoutingWatcher(Path(routing_path), metrics, poll_seconds=poll_seconds)
    prediction_log = (
        PredictionLog(prediction_log_dir, metrics.registry) if prediction_log_dir else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        watcher.start()
        if prediction_log is not None:
            prediction_log.start()
        yield
        watcher.stop()
        if prediction_log is not None:
            prediction_log.stop()

    app = FastAPI(title="Zero Margin model server", version="1", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.watcher = watcher
    app.state.prediction_log = prediction_log

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid input", _fields_of(error)), status_code=422)

    # Probes and metrics are answered on the event loop itself, so a busy thread pool
    # of predictions never makes the server look dead.
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        served = watcher.served
        body = {
            "ready": watcher.ready(),
            "revision": served.routing.revision,
            "error": watcher.last_error,
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    async def metrics_view() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models/{model}")
    def model_view(model: str) -> JSONResponse:
        route = watcher.served.routing.models.get(model)
        if route is None:
            return JSONResponse(error_body(f"no model {model!r} is served"), status_code=404)
        tracks = {
            name: {
                "version": track.version,
                "weight": track.weight
                if name == "canary"
                else 100 - (route.canary.weight if route.canary else 0),
            }
            for name, track in route.tracks()
        }
        return JSONResponse(
            {"model": model, "revision": watcher.served.routing.revision, "tracks": tracks}
        )

    async def _answer(model: str, version: str | None, request: Request) -> JSONResponse:
        served = watcher.served  # this request's snapshot, whatever changes meanwhile
        request_id = request_id_new()
        route = served.routing.models.get(model)
        if route is None:
            return JSONResponse(error_body(f"no model {model!r} is served"), status_code=404)
        too_large = JSONResponse(
            error_body("the body is too large", {"body": [f"at most {MAX_BODY_BYTES:,} bytes"]}),
            status_code=413,
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return too_large
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):
            return JSONResponse(
                error_body("the body must be JSON", {"body": ["not JSON"]}), status_code=400
            )
        try:
            payload = PREDICTORS[route.kind].request.model_validate(raw)
        except ValidationError as error:
            name, track = track_for(route, None) if version is None else ("pinned", route.stable)
            metrics.requests.labels(model, version or track.version, name, "invalid").inc()
            return JSONResponse(error_body("invalid input", _fields_of(error)), status_code=422)
        if version is None:
            track_name, track = track_for(route, payload.key())
        else:
            matches = [(n, t) for n, t in route.tracks() if t.version == version]
            if not matches:
                return JSONResponse(
                    error_body(f"version {version!r} of {model!r} is not served"),
                    status_code=404,
                )
            track_name, track = matches[0]
        labels = (model, track.version, track_name)
        started = time.perf_counter()
        fault = route.faults.get(track.version) if allow_faults else None
        if fault is not None and fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault is not None and random.random() < fault.error_rate:  # noqa: S311  # nosec B311  # fault injection, not security
            metrics.requests.labels(*labels, "error").inc()
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)
            return JSONResponse(error_body("injected fault"), status_code=503)
        predictor = served.predictors[(model, track.version)]
        customer = getattr(payload, "customer_id", None)
        suppressed = bool(
            predictor.purpose
            and customer
            and suppression.current().suppressed(customer, predictor.purpose)
        )
        try:
            # In the thread pool: a prediction is CPU work that must not stall the loop.
            answer = await run_in_threadpool(
                predictor.predict_suppressed if suppressed else predictor.predict, payload
            )
        except InputError as error:
            metrics.requests.labels(*labels, "invalid").inc()
            return JSONResponse(
                error_body("invalid input", {error.field: [str(error)]}), status_code=422
            )
        elapsed = time.perf_counter() - started
        metrics.requests.labels(*labels, "ok").inc()
        metrics.latency.labels(*labels).observe(elapsed)
        for value in answer.predictions:
            metrics.prediction.labels(*labels).observe(value)
        for name, value in answer.features.items():
            metrics.feature.labels(*labels, name).observe(value)
        if prediction_log is not None:
            inputs = payload.model_dump(mode="json")
            prediction_log.append(
                ts=datetime.now(UTC),
                request_id=request_id,
                model=model,
                version=track.version,
                track=track_name,
                key=payload.key(),
                customer_id=getattr(payload, "customer_id", None),
                inputs=inputs,
                # What the model said, without the request's own fields echoed back.
                prediction={k: v for k, v in answer.body.items() if k not in inputs},
            )
        return JSONResponse(
            {
                "model": model,
                "version": track.version,
                "track": track_name,
                "request_id": request_id,
                **answer.body,
            },
            headers={"X-Request-ID": request_id},
        )

    @app.post("/v1/models/{model}/predict")
    async def predict(model: str, request: Request) -> JSONResponse:
        return await _answer(model, None, request)

    @app.post("/v1/models/{model}/versions/{version}/predict")
    async def predict_pinned(model: str, version: str, request: Request) -> JSONResponse:
        return await _answer(model, version, request)

    return app

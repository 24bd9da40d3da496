"""The prediction log: every answered prediction as one JSON line, per model and day.

    <log dir>/<model slug>/<YYYY-MM-DD>.jsonl   (the day of `ts`, in UTC)

One line:

    {"ts": "2026-11-29T21:15:23.123456Z", "request_id": "<uuid4 hex>",
     "model": "demand-forecasting", "version": "1.2.0", "track": "stable",
     "key": "<the request's sticky key or null>", "customer_id": "<str or null>",
     "inputs": {...the request body as validated...}, "prediction": {...the answer...}}

This format is read by others: the portal's quality and drift jobs join it with the
ground-truth outcomes by `request_id` and read `inputs`; data subject access and
erasure find a person's lines by `customer_id`. Change it only with them.

Writing never blocks nor fails a prediction: a request only puts its line on a bounded
in-memory queue; one thread appends the queued lines in batches. A full queue or a
failed write drops lines and counts them in `serving_prediction_log_failures_total`
(by reason), never raises into the request.
"""

import fcntl
import json
import queue
import threading
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

QUEUE_LINES = 50_000  # at most this many lines wait in memory; more are dropped, counted
FLUSH_SECONDS = 0.25


def request_id_new() -> str:
    """A new request id: a uuid4 in hex (32 characters)."""
    return uuid.uuid4().hex


def log_path(root: str | Path, model: str, ts: datetime) -> Path:
    """The file a line stamped `ts` (aware) of `model` goes to."""
    return Path(root) / model / f"{ts.astimezone(UTC).date().isoformat()}.jsonl"


def rfc3339(ts: datetime) -> str:
    """`ts` (aware) as RFC 3339 in UTC with microseconds and a `Z`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PredictionLog:
    """Appends prediction lines under `root` from a background thread."""

    def __init__(
        self, root: str | Path, registry: CollectorRegistry, *, max_lines: int = QUEUE_LINES
    ) -> None:
        self.root = Path(root)
        self._queue: queue.Queue[tuple[str, datetime, str] | None] = queue.Queue(max_lines)
        self.written = Counter(
            "serving_prediction_log_lines",
            "Prediction log lines written",
            ["model"],
            registry=registry,
        )
        self.failures = Counter(
            "serving_prediction_log_failures",
            "Prediction log lines lost (queue_full, write_error, encode_error)",
            ["model", "reason"],
            registry=registry,
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def append(
        self,
        *,
        ts: datetime,
        request_id: str,
        model: str,
        version: str,
        track: str,
        key: str | None,
        customer_id: str | None,
        inputs: dict[str, Any],
        prediction: Any,
    ) -> None:
        """Queue one line; never raises and never waits."""
        try:
            line = json.dumps(
                {
                    "ts": rfc3339(ts),
                    "request_id": request_id,
                    "model": model,
                    "version": version,
                    "track": track,
                    "key": key,
                    "customer_id": customer_id,
                    "inputs": inputs,
                    "prediction": prediction,
                },
                separators=(",", ":"),
                default=str,  # dates in the inputs
            )
        except (TypeError, ValueError):
            self.failures.labels(model, "encode_error").inc()
            return
        try:
            self._queue.put_nowait((model, ts, line))
        except queue.Full:
            self.failures.labels(model, "queue_full").inc()

    def _write(self, batch: list[tuple[str, datetime, str]]) -> None:
        files: dict[Path, list[str]] = defaultdict(list)
        models: dict[Path, str] = {}
        for model, ts, line in batch:
            path = log_path(self.root, model, ts)
            files[path].append(line)
            models[path] = model
        for path, lines in files.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # One write per file and batch, in append mode: whole lines only, so a
                # reader never sees half a line unless the disk fills up mid-write.
                # On GKE every replica of a model appends to the same file on an NFS
                # share, where O_APPEND alone is not atomic between machines: the
                # POSIX lock makes the client find the current end and flush before
                # the next replica writes.
                with path.open("a", encoding="utf-8") as out:
                    fcntl.lockf(out, fcntl.LOCK_EX)
                    try:
                        out.write("".join(f"{line}\n" for line in lines))
                        out.flush()
                    finally:
                        fcntl.lockf(out, fcntl.LOCK_UN)
            except OSError:
                self.failures.labels(models[path], "write_error").inc(len(lines))
                continue
            self.written.labels(models[path]).inc(len(lines))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            taken, stop = 1, first is None
            batch = [] if first is None else [first]
            while not stop and len(batch) < QUEUE_LINES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            try:
                if batch:
                    self._write(batch)
            finally:
                for _ in range(taken):
                    self._queue.task_done()
            if stop:
                return
            # Let lines gather: one append per file and batch, not one per request.
            self._stopping.wait(FLUSH_SECONDS)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued line is written; False on timeout."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

"""The suppression list as the model server reads it (`pipelines.suppression`): people
who get the default segment and non-personalised recommendations.

The portal rewrites the file (atomically) whenever the list changes; the server looks
at the file's modification time at most once per `poll_seconds` and re-reads it when
it changed. A file that cannot be read keeps the last good list in force (a broken
file must not start profiling people who objected) and is counted.
"""

import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from pipelines.suppression import EMPTY, SuppressionList, SuppressionListInvalid, suppression_read


class SuppressionWatch:
    """The current list from `path` (the empty list when `path` is None)."""

    def __init__(
        self, path: str | Path | None, registry: CollectorRegistry, *, poll_seconds: float = 1.0
    ) -> None:
        self.path = Path(path) if path else None
        self.poll_seconds = poll_seconds
        self._list: SuppressionList = EMPTY
        self._mtime: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.errors = Counter(
            "serving_suppression_list_errors",
            "Times the suppression list file could not be read (the last good list stays)",
            registry=registry,
        )

    def current(self) -> SuppressionList:
        if self.path is None:
            return EMPTY
        now = time.monotonic()
        if now - self._checked < self.poll_seconds:
            return self._list
        with self._lock:
            if now - self._checked < self.poll_seconds:
                return self._list
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime if self.path.exists() else None
                if mtime != self._mtime:
                    self._list = suppression_read(self.path) if mtime is not None else EMPTY
                    self._mtime = mtime
            except (OSError, SuppressionListInvalid):
                self.errors.inc()
        return self._list

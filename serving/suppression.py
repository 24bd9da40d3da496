"""The suppression list as the model server reads it (`pipelines.suppression`): people
who get the default segment and non-personalised recommendations.

The portal rewrites the file (atomically) whenever the list changes; the server looks
at the file's modification time at most once per `poll_seconds` and re-reads it when
it changed. A file that cannot be read keeps the last good list in force (a broken
file must not start profiling people who objected) and is counted. The list's hashing
key is a secret the server gets from its environment (`DSAR_SUPPRESSION_KEY` or
`DSAR_SUPPRESSION_KEY_FILE`); a server given a list but no key refuses to start.
"""

import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from pipelines.suppression import (
    EMPTY,
    KEY_FILE_VARIABLE,
    KEY_VARIABLE,
    SuppressionList,
    SuppressionListInvalid,
    suppression_key_from_environment,
    suppression_read,
)


class SuppressionWatch:
    """The current list from `path` (the empty list when `path` is None), read with
    `key` (by default the environment's). SuppressionListInvalid at once when a path is
    given and no key: the server must not run believing nobody is listed."""

    def __init__(
        self,
        path: str | Path | None,
        registry: CollectorRegistry,
        *,
        poll_seconds: float = 1.0,
        key: bytes | None = None,
    ) -> None:
        self.path = Path(path) if path else None
        self.key = key if key is not None else suppression_key_from_environment()
        if self.path is not None and self.key is None:
            raise SuppressionListInvalid(
                f"the suppression list {self.path} needs its hashing key: set {KEY_VARIABLE} "
                f"or {KEY_FILE_VARIABLE}"
            )
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
                    self._list = (
                        suppression_read(self.path, key=self.key) if mtime is not None else EMPTY
                    )
                    self._mtime = mtime
            except (OSError, SuppressionListInvalid):
                self.errors.inc()
        return self._list

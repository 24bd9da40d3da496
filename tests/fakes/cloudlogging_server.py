"""A local stand-in for the Cloud Logging REST API's `entries.write`.

It answers the path google-cloud-logging's HTTP/JSON transport POSTs to
(`logging_v2._http._LoggingAPI.write_entries`: `/v2/entries:write`) in Google's JSON
format (errors as `{"error": {"code", "message", "status"}}`), keeps the entries it
accepted per log, and records every request so tests can assert the exact bodies.

Like Cloud Logging, it drops an entry whose (logName, insertId, timestamp) it already
holds, so a batch sent twice is stored once; with `partialSuccess: false` a batch with
an entry it refuses (no logName, no resource) stores nothing.

    POST /v2/entries:write    WriteLogEntries
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.json_http import Failure, JsonHttpFake, RecordedRequest

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 503: "UNAVAILABLE"}
WRITE_PATH = "/v2/entries:write"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FakeCloudLoggingServer(JsonHttpFake):
    """Accepted entries in memory (`stored`, in arrival order), on 127.0.0.1."""

    stored: list[dict[str, Any]] = field(default_factory=list)
    _keys: set[tuple[str, str, str]] = field(default_factory=set)

    def fail(self, status: int, *, times: int | None = 1) -> None:
        """The next `times` writes (None: until clear_failures()) get `status`."""
        with self._lock:
            self._failures.append(
                Failure(
                    method="POST",
                    path=re.compile(re.escape(WRITE_PATH)),
                    status=status,
                    message="injected failure",
                    remaining=times,
                    status_name=_STATUS.get(status),
                )
            )

    def writes(self) -> list[RecordedRequest]:
        return self.requests_to("POST", re.escape(WRITE_PATH))

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        request = self._request_keep(method, raw_path, headers, raw_body)
        path, body = request.path, request.body
        with self._lock:
            try:
                injected = self._injected_failure(method, path)
                if injected is not None:
                    raise ApiError(injected.status, injected.message)
                if method != "POST" or path != WRITE_PATH:
                    raise ApiError(404, f"The requested URL {path} was not found.")
                return 200, self._write(body)
            except ApiError as error:
                return error.status, {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "status": _STATUS.get(error.status, "UNKNOWN"),
                    }
                }

    def _write(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
            raise ApiError(400, "entries is required.")
        accepted = []
        for index, entry in enumerate(body["entries"]):
            full = {
                "logName": entry.get("logName") or body.get("logName"),
                "resource": entry.get("resource") or body.get("resource"),
                **{k: v for k, v in entry.items() if k not in ("logName", "resource")},
            }
            if not full["logName"] or not full["resource"]:
                if body.get("partialSuccess", False) is False:
                    raise ApiError(400, f"entries[{index}]: logName and resource are required.")
                continue
            accepted.append(full)
        for full in accepted:
            key = (full["logName"], str(full.get("insertId", "")), str(full.get("timestamp")))
            if full.get("insertId") and key in self._keys:
                continue  # Cloud Logging deduplicates on insertId and timestamp
            self._keys.add(key)
            self.stored.append(full)
        return {}

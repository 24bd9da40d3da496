"""The HTTP side every JSON stand-in server shares: a threaded server on 127.0.0.1 with
a port the OS picks, started and stopped by the test, the requests it received and the
failures a test injects. A subclass answers requests in
`handle(method, raw_path, headers, raw_body) -> (status, JSON payload)`, usually by
keeping the request (`_request_keep`), answering an injected failure
(`_injected_failure`) and finding the route (`_route`)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

# A route of a fake's API: (method, path regex with named groups, action name).
Route = tuple[str, re.Pattern[str], str]


def rfc3339(moment: datetime | None = None) -> str:
    """A time the way Google's JSON writes it: UTC with a trailing Z."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; `path` is percent-decoded."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    raw_path: str = ""


@dataclass
class Failure:
    """An error the test asked for: the next `remaining` matching requests get it
    (None: until clear_failures())."""

    method: str
    path: re.Pattern[str]
    status: int
    message: str
    remaining: int | None
    status_name: str | None = None


@dataclass(frozen=True)
class RawResponse:
    """An answer that is not JSON: bytes as they are (a media download), or an empty
    body with headers (a resumable upload's 308). `handle` returns it as its payload."""

    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class JsonHttpFake:
    """`requests` is what was received; `_failures` the errors to inject; `_lock`
    guards both and the subclass's own state (the server answers on threads)."""

    requests: list[RecordedRequest] = field(default_factory=list)
    _failures: list[Failure] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _request_keep(
        self,
        method: str,
        raw_path: str,
        headers: dict[str, str],
        raw_body: bytes,
        *,
        body: Any = None,
    ) -> RecordedRequest:
        """Parse one request and add it to `requests`: the path percent-decoded, the
        query parsed, the header names lower-cased, and the body (unless given) JSON,
        or text when it is not JSON, or None when empty."""
        split = urlsplit(raw_path)
        if body is None and raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode(errors="replace")
        request = RecordedRequest(
            method=method,
            path=unquote(split.path),
            raw_path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            body=body,
            headers={k.lower(): v for k, v in headers.items()},
        )
        with self._lock:
            self.requests.append(request)
        return request

    def _injected_failure(self, method: str, path: str) -> Failure | None:
        """The failure this request gets, if any (call with the lock held)."""
        for failure in self._failures:
            if failure.method == method and failure.path.search(path):
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def requests_to(self, method: str, path_pattern: str = "") -> list[Any]:
        """Recorded requests with this method whose path matches the regex."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == method.upper() and re.search(path_pattern, r.path)
            ]

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_port

    @property
    def url(self) -> str:
        """The `api_endpoint` to give the client library."""
        return f"http://127.0.0.1:{self.port}"


def route_find(routes: Iterable[Route], method: str, path: str) -> tuple[str, dict[str, str]]:
    """The action of the first route that takes this method and path, and the path's
    named groups; ("", {}) when none does."""
    for route_method, pattern, action in routes:
        match = pattern.match(path)
        if match and route_method == method:
            return action, match.groupdict()
    return "", {}


def _handler_for(fake: JsonHttpFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            status, payload = fake.handle(
                self.command, self.path, dict(self.headers.items()), raw_body
            )
            if isinstance(payload, RawResponse):
                data, content_type = payload.body, payload.content_type
                extra = payload.headers
            else:
                data = json.dumps(payload).encode()
                content_type, extra = "application/json; charset=UTF-8", ()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    return Handler

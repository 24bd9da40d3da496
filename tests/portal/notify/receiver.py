"""A real HTTP server standing in for a webhook receiver (a Slack incoming webhook, a
ticketing system): it checks the portal's signature the way a receiver would, answers
with the statuses a test scripts, and records every request."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from portal.webhooks import SIGNATURE_HEADER, webhook_signature_verify


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Answers each POST with the next scripted status (200 once the script runs out);
    a request whose signature does not verify under `secret` gets 401 instead."""

    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.requests: list[ReceivedRequest] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                valid = webhook_signature_verify(
                    receiver.secret, self.headers.get(SIGNATURE_HEADER), body
                )
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(self.path, dict(self.headers.items()), body, valid)
                    )
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                if not valid:
                    status = 401
                payload = b'{"ok": true}' if status < 300 else b"receiver says no"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/portal"

    def answer(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

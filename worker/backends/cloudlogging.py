"""Cloud Logging: the audit ledger's copy outside the portal's database, written through
the official client (google-cloud-logging) over its HTTP/JSON transport.

The client picks gRPC when grpcio is installed; this adapter asks for its JSON
transport (`_use_grpc=False`, the client's documented switch), which POSTs to
`{api_endpoint}/v2/entries:write`. That keeps one transport in production and in the
tests, where a local stand-in speaks the same REST wire format.

Imports no portal app: callers hand over plain `LedgerLogEntry` records and get an
exception back when the write did not happen. One call writes one batch with
`partialSuccess: false`, so a batch is written whole or not at all; Cloud Logging drops
an entry whose `insertId` and `timestamp` repeat one it already has in the same log, so
a batch sent again after a lost answer adds no duplicates. The client's own retries
are off; the caller's outbox decides when to try again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import google.auth.exceptions
import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import logging as cloud_logging
from google.cloud.logging import Resource

DEFAULT_LOG_NAME = "portal-audit-ledger"
_RETRYABLE = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.TooManyRequests,
    api_exceptions.InternalServerError,
    api_exceptions.GatewayTimeout,
    api_exceptions.DeadlineExceeded,
    api_exceptions.Aborted,
    api_exceptions.BadGateway,
)


class LoggingUnavailable(Exception):
    """Cloud Logging refused or could not be reached; `retryable` says whether trying
    again later may help (an outage, a quota) or a person must act (a permission, a
    malformed entry)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class LedgerLogEntry:
    """One structured entry: `payload` becomes the entry's jsonPayload; `insert_id`
    names it for deduplication; `timestamp` is when the event happened (UTC)."""

    insert_id: str
    timestamp: datetime
    payload: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)


class CloudLoggingWriter:
    """Writes batches of structured entries to one log of one project."""

    def __init__(
        self,
        *,
        project: str,
        log_name: str = DEFAULT_LOG_NAME,
        api_endpoint: str | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        """`api_endpoint` is Google's by default, or an http(s):// URL of a stand-in
        (which then gets anonymous credentials unless others are given)."""
        if not project:
            raise ValueError("Cloud Logging needs a project")
        if api_endpoint and credentials is None and api_endpoint.startswith("http://"):
            credentials = AnonymousCredentials()  # a local stand-in: no token to send
        options = {"api_endpoint": api_endpoint} if api_endpoint else None
        try:
            self._client = cloud_logging.Client(
                project=project,
                credentials=credentials,
                client_options=options,
                _use_grpc=False,
            )
        except google.auth.exceptions.GoogleAuthError as exc:
            # No Workload Identity or key where the worker runs: a person must fix it.
            raise LoggingUnavailable(f"Google credentials: {exc}", retryable=False) from exc
        self.project = project
        self.log_name = log_name
        # A fixed resource: without one the client would probe the metadata server.
        self._resource = Resource(type="global", labels={"project_id": project})
        self._logger = self._client.logger(log_name, resource=self._resource)

    @property
    def full_log_name(self) -> str:
        """`projects/{project}/logs/{log_name}`, as entries carry it."""
        return f"projects/{self.project}/logs/{self.log_name}"

    def entries_write(self, entries: list[LedgerLogEntry]) -> None:
        """Write `entries` in one `entries:write` call, whole or not at all.

        Raises LoggingUnavailable (retryable for 5xx, 429, timeouts and connection
        errors; not for 4xx such as a missing permission)."""
        if not entries:
            return
        batch = self._logger.batch()
        for entry in entries:
            batch.log_struct(
                entry.payload,
                insert_id=entry.insert_id,
                timestamp=entry.timestamp,
                labels=entry.labels or None,
                severity="NOTICE",
                resource=self._resource,
            )
        try:
            batch.commit(partial_success=False)
        except _RETRYABLE as exc:
            raise LoggingUnavailable(f"entries:write: {exc}", retryable=True) from exc
        except api_exceptions.GoogleAPICallError as exc:
            raise LoggingUnavailable(f"entries:write: {exc}", retryable=False) from exc
        except (requests.RequestException, OSError) as exc:
            raise LoggingUnavailable(f"entries:write: {exc}", retryable=True) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            raise LoggingUnavailable(f"Google credentials: {exc}", retryable=True) from exc

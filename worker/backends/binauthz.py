"""Binary Authorization attestations: Container Analysis occurrences on an attestor's
note, through the official clients (google-cloud-binary-authorization to read the
attestor, the Grafeas client google-cloud-containeranalysis builds on for notes and
occurrences) over their REST transport.

Imports no portal app: callers pass the image, the payload and its signature and get
plain records back. The clients' own retries are off; the Celery task that calls this
decides when to try again.

An attestation is an ATTESTATION occurrence whose `resourceUri` is the image by digest
(`https://REGISTRY/PATH@sha256:...`), whose note is the attestor's
(`userOwnedGrafeasNote.noteReference`), and whose payload is signed with a key the
attestor lists (`publicKeyId` names it). Binary Authorization admits the image on a
cluster whose policy requires that attestor once such an occurrence verifies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import google.auth.exceptions
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud import binaryauthorization_v1
from grafeas import grafeas_v1
from grafeas.grafeas_v1.services.grafeas.transports.rest import GrafeasRestTransport

DEFAULT_TIMEOUT_SECONDS = 30.0
CONTAINER_ANALYSIS_HOST = "containeranalysis.googleapis.com"
_ATTESTOR_NAME = re.compile(r"^projects/[^/]+/attestors/[^/]+$")
_NOTE_NAME = re.compile(r"^projects/([^/]+)/notes/[^/]+$")
_RETRYABLE = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.TooManyRequests,
    api_exceptions.InternalServerError,
    api_exceptions.GatewayTimeout,
    api_exceptions.DeadlineExceeded,
    api_exceptions.Aborted,
)
_FAILURES = (api_exceptions.GoogleAPICallError, api_exceptions.RetryError, OSError)


class AttestationUnavailable(Exception):
    """Container Analysis or Binary Authorization refused or could not be reached;
    `retryable` says whether trying again later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class AttestationRecord:
    occurrence_name: str
    note_name: str
    resource_uri: str
    created_at: datetime | None


def _unavailable(exc: Exception, *, operation: str) -> AttestationUnavailable:
    retryable = isinstance(exc, (*_RETRYABLE, OSError, api_exceptions.RetryError))
    return AttestationUnavailable(f"{operation}: {exc}", retryable=retryable)


def _record(occurrence: grafeas_v1.Occurrence) -> AttestationRecord:
    created = occurrence.create_time
    return AttestationRecord(
        occurrence_name=occurrence.name,
        note_name=occurrence.note_name,
        resource_uri=occurrence.resource_uri,
        created_at=created if isinstance(created, datetime) else None,
    )


def _endpoint(api_endpoint: str | None, default_host: str) -> tuple[str, str]:
    """(host, url scheme) for a transport: Google's host, or a stand-in's http:// URL."""
    if not api_endpoint:
        return default_host, "https"
    scheme, _, host = api_endpoint.rpartition("://")
    return host, scheme or "https"


class ContainerAnalysisAttestor:
    """Writes and finds the attestations of one Binary Authorization attestor."""

    def __init__(
        self,
        *,
        attestor: str,
        api_endpoint: str | None = None,
        binauthz_api_endpoint: str | None = None,
        credentials: Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """`attestor` is `projects/{p}/attestors/{a}`; endpoints may be hosts (Google's
        by default) or http(s):// URLs of stand-ins."""
        if not _ATTESTOR_NAME.match(attestor):
            raise ValueError(f"not a Binary Authorization attestor name: {attestor!r}")
        self.attestor = attestor
        self._timeout = timeout
        self._note_name: str | None = None
        host, scheme = _endpoint(api_endpoint, CONTAINER_ANALYSIS_HOST)
        try:
            self._binauthz = binaryauthorization_v1.BinauthzManagementServiceV1Client(
                transport="rest",
                credentials=credentials,
                client_options=(
                    ClientOptions(api_endpoint=binauthz_api_endpoint)
                    if binauthz_api_endpoint
                    else None
                ),
            )
            self._grafeas = grafeas_v1.GrafeasClient(
                transport=GrafeasRestTransport(
                    host=host, url_scheme=scheme, credentials=credentials
                )
            )
        except google.auth.exceptions.GoogleAuthError as exc:
            # No Workload Identity or key where the worker runs: a person must fix it.
            raise AttestationUnavailable(f"Google credentials: {exc}", retryable=False) from exc

    def note_name(self) -> str:
        """The attestor's note (`projects/{p}/notes/{n}`), read once from the attestor."""
        if self._note_name is None:
            try:
                attestor = self._binauthz.get_attestor(
                    name=self.attestor, retry=None, timeout=self._timeout
                )
            except _FAILURES as exc:
                raise _unavailable(exc, operation="get attestor") from exc
            note = attestor.user_owned_grafeas_note.note_reference
            if not _NOTE_NAME.match(note):
                raise AttestationUnavailable(
                    f"attestor {self.attestor} has no Container Analysis note", retryable=False
                )
            self._note_name = note
        return self._note_name

    def attestation_find(self, *, resource_uri: str) -> AttestationRecord | None:
        """The attestor's occurrence for this image, if one exists (an earlier attempt
        may have created it and died before recording it)."""
        note = self.note_name()
        project = _NOTE_NAME.match(note).group(1)  # type: ignore[union-attr]
        try:
            pages = self._grafeas.list_note_occurrences(
                name=note,
                filter=f'resourceUrl="{resource_uri}"',
                retry=None,
                timeout=self._timeout,
            )
            for occurrence in pages:
                if occurrence.resource_uri == resource_uri and occurrence.name.startswith(
                    f"projects/{project}/"
                ):
                    return _record(occurrence)
        except _FAILURES as exc:
            raise _unavailable(exc, operation="list note occurrences") from exc
        return None

    def attestation_create(
        self, *, resource_uri: str, payload: bytes, signature: bytes, public_key_id: str
    ) -> AttestationRecord:
        """Create the ATTESTATION occurrence: `payload` signed as `signature` by the key
        the attestor knows as `public_key_id`."""
        note = self.note_name()
        project = _NOTE_NAME.match(note).group(1)  # type: ignore[union-attr]
        occurrence = grafeas_v1.Occurrence(
            resource_uri=resource_uri,
            note_name=note,
            attestation=grafeas_v1.AttestationOccurrence(
                serialized_payload=payload,
                signatures=[grafeas_v1.Signature(signature=signature, public_key_id=public_key_id)],
            ),
        )
        try:
            created = self._grafeas.create_occurrence(
                parent=f"projects/{project}",
                occurrence=occurrence,
                retry=None,
                timeout=self._timeout,
            )
        except _FAILURES as exc:
            raise _unavailable(exc, operation="create occurrence") from exc
        return _record(created)

"""A local stand-in for the Binary Authorization and Container Analysis REST APIs, the
parts an attestation takes: reading an attestor, listing a note's occurrences and
creating an ATTESTATION occurrence.

It answers the paths the official clients' REST transports call (the generated
`rest_base.py` of `BinauthzManagementServiceV1Client` and of Grafeas'
`GrafeasRestTransport`), in Google's JSON format (camelCase fields, bytes as base64,
RFC 3339 times, errors as `{"error": {"code", "message", "status"}}`), and records
every request so tests can assert exactly what the client sent.

    GET  /v1/projects/{p}/attestors/{a}           GetAttestor
    GET  /v1/projects/{p}/notes/{n}/occurrences   ListNoteOccurrences (filter resourceUrl=)
    POST /v1/projects/{p}/occurrences             CreateOccurrence

A created occurrence whose note does not exist, or whose kind is not ATTESTATION, is
refused as Container Analysis refuses it (INVALID_ARGUMENT / NOT_FOUND).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.json_http import Failure, JsonHttpFake, rfc3339, route_find

ATTESTATION_KIND = 7  # grafeas.v1.NoteKind.ATTESTATION

_ROUTES = (
    (
        "GET",
        re.compile(r"^/v1/projects/(?P<project>[^/]+)/attestors/(?P<attestor>[^/:]+)$"),
        "attestor",
    ),
    (
        "GET",
        re.compile(r"^/v1/projects/(?P<project>[^/]+)/notes/(?P<note>[^/:]+)/occurrences$"),
        "note_occurrences",
    ),
    ("POST", re.compile(r"^/v1/projects/(?P<project>[^/]+)/occurrences$"), "create_occurrence"),
)
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 503: "UNAVAILABLE"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FakeContainerAnalysisServer(JsonHttpFake):
    """Attestors, notes and occurrences in memory, on 127.0.0.1."""

    attestors: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)
    occurrences: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_attestor(self, name: str, *, note: str, public_key_id: str, pem: str) -> None:
        """An attestor with its note and one PKIX public key."""
        with self._lock:
            self.notes.add(note)
            self.attestors[name] = {
                "name": name,
                "userOwnedGrafeasNote": {
                    "noteReference": note,
                    "publicKeys": [
                        {
                            "id": public_key_id,
                            "pkixPublicKey": {
                                "publicKeyPem": pem,
                                "signatureAlgorithm": "ECDSA_P256_SHA256",
                            },
                        }
                    ],
                },
                "updateTime": rfc3339(),
            }

    def fail(self, method: str, path_pattern: str, status: int, *, times: int | None = 1) -> None:
        with self._lock:
            self._failures.append(
                Failure(
                    method=method.upper(),
                    path=re.compile(path_pattern),
                    status=status,
                    message="injected failure",
                    remaining=times,
                    status_name=_STATUS.get(status),
                )
            )

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        request = self._request_keep(method, raw_path, headers, raw_body)
        path, query, body = request.path, request.query, request.body
        with self._lock:
            try:
                injected = self._injected_failure(method, path)
                if injected is not None:
                    raise ApiError(injected.status, injected.message)
                action, params = route_find(_ROUTES, method, path)
                if not action:
                    raise ApiError(404, f"The requested URL {path} was not found.")
                return 200, getattr(self, f"_{action}")(query=query, body=body, **params)
            except ApiError as error:
                return error.status, {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "status": _STATUS.get(error.status, "UNKNOWN"),
                    }
                }

    def _attestor(self, *, project: str, attestor: str, **_: Any) -> dict[str, Any]:
        name = f"projects/{project}/attestors/{attestor}"
        if name not in self.attestors:
            raise ApiError(404, f"Attestor {name} not found.")
        return self.attestors[name]

    def _note_occurrences(self, *, project: str, note: str, query: dict, **_: Any) -> dict:
        name = f"projects/{project}/notes/{note}"
        if name not in self.notes:
            raise ApiError(404, f"Note {name} not found.")
        wanted = re.fullmatch(r'resourceUrl="([^"]+)"', (query.get("filter") or [""])[0])
        found = [
            occurrence
            for occurrence in self.occurrences.values()
            if occurrence["noteName"] == name
            and (wanted is None or occurrence["resourceUri"] == wanted.group(1))
        ]
        return {"occurrences": found} if found else {}

    def _create_occurrence(self, *, project: str, body: Any, **_: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("noteName") not in self.notes:
            raise ApiError(404, f"Note {body.get('noteName') if body else None} not found.")
        attestation = body.get("attestation") or {}
        if not attestation.get("serializedPayload") or not attestation.get("signatures"):
            raise ApiError(400, "An ATTESTATION occurrence needs a payload and a signature.")
        if not str(body.get("resourceUri", "")).startswith("https://"):
            raise ApiError(400, "resourceUri must be an https:// URI.")
        name = f"projects/{project}/occurrences/{uuid.uuid4()}"
        occurrence = {**body, "name": name, "kind": ATTESTATION_KIND, "createTime": rfc3339()}
        occurrence["updateTime"] = occurrence["createTime"]
        self.occurrences[name] = occurrence
        return occurrence

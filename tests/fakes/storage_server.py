"""A local stand-in for Cloud Storage's JSON API, the one google-cloud-storage speaks.

It answers the paths the client library really calls (`google/cloud/storage/blob.py`'s
URL templates and `bucket.py`'s paths), in Cloud Storage's JSON format (objects as
`storage#object` resources, sizes and generations as strings, MD5 and CRC32C in
base64, errors as `{"error": {"code", "message", "errors"}}`), keeps objects in memory
and records every request so tests can assert what the client sent.

    GET    /storage/v1/b/{bucket}                                    buckets.get
    GET    /storage/v1/b/{bucket}/o?prefix=&delimiter=&pageToken=    objects.list
    GET    /storage/v1/b/{bucket}/o/{object}                         objects.get
    DELETE /storage/v1/b/{bucket}/o/{object}                         objects.delete
    GET    /download/storage/v1/b/{bucket}/o/{object}?alt=media       media download
    POST   /upload/storage/v1/b/{bucket}/o?uploadType=multipart       small uploads
    POST   /upload/storage/v1/b/{bucket}/o?uploadType=resumable       resumable session
    PUT    /upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id=...  its chunks

The client writes an object's name percent-encoded into the path (`a%2Fb.csv`);
`RecordedRequest.path` holds it decoded. A download answers with `x-goog-hash`, so the
library's checksum check runs for real; a `Range` header gets a 206 with that part.
The client uploads with one multipart request up to 8 MiB and a resumable session
above that (or whenever a blob has a `chunk_size`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import google_crc32c

from tests.fakes.json_http import Failure, JsonHttpFake, RawResponse, rfc3339, route_find

_OBJECT = r"/b/(?P<bucket>[^/]+)/o/(?P<name>[^/?]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)$"), "get_bucket"),
    ("GET", re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/o$"), "list_objects"),
    ("GET", re.compile(rf"^/storage/v1{_OBJECT}$"), "get_object"),
    ("DELETE", re.compile(rf"^/storage/v1{_OBJECT}$"), "delete_object"),
    ("GET", re.compile(rf"^/download/storage/v1{_OBJECT}$"), "download"),
    ("POST", re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$"), "upload"),
    ("PUT", re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$"), "upload_chunk"),
]


class StorageApiError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or {404: "notFound", 400: "invalid", 503: "backendError"}.get(
            status, "error"
        )


@dataclass
class StoredObject:
    bucket: str
    name: str
    data: bytes
    generation: int
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=rfc3339)

    def resource(self, base_url: str) -> dict[str, Any]:
        quoted = quote(self.name, safe="")
        crc = google_crc32c.Checksum(self.data).digest()
        resource = {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base_url}/storage/v1/b/{self.bucket}/o/{quoted}",
            "mediaLink": (
                f"{base_url}/download/storage/v1/b/{self.bucket}/o/{quoted}"
                f"?generation={self.generation}&alt=media"
            ),
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": "1",
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(len(self.data)),
            "md5Hash": base64.b64encode(hashlib.md5(self.data).digest()).decode(),  # noqa: S324  # nosec B324  # the API's own checksum, not security
            "crc32c": base64.b64encode(crc).decode(),
            "etag": f"CP{self.generation}",
            "timeCreated": self.created,
            "updated": self.created,
        }
        if self.metadata:
            resource["metadata"] = dict(self.metadata)
        return resource


@dataclass
class FakeStorageServer(JsonHttpFake):
    """Cloud Storage's JSON API in memory, on 127.0.0.1. Buckets exist once a test
    `add_bucket`s them (or puts an object in them); `page_size` is the largest page
    objects.list answers, so paging is exercised with a few objects."""

    page_size: int = 1000
    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    # upload_id -> {"bucket", "name", "content_type", "metadata", "data" (bytearray)}
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _generation: int = 1_700_000_000_000_000

    # --- what tests arrange and read ---------------------------------------------------

    def add_bucket(self, bucket: str) -> None:
        with self._lock:
            self.buckets.setdefault(bucket, {})

    def put(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store `data` at `gs://bucket/name`, as an upload through the API would."""
        bucket, name = _split(uri)
        with self._lock:
            self._store(bucket, name, bytes(data), content_type, {})

    def get(self, uri: str) -> bytes:
        bucket, name = _split(uri)
        with self._lock:
            return self.buckets[bucket][name].data

    def names(self, bucket: str) -> list[str]:
        with self._lock:
            return sorted(self.buckets.get(bucket, {}))

    def fail(self, method: str, path_pattern: str, *, status: int = 503, times: int = 1) -> None:
        """The next `times` requests matching answer `status` (a path is decoded)."""
        with self._lock:
            self._failures.append(
                Failure(method.upper(), re.compile(path_pattern), status, "injected", times)
            )

    # --- the API ---------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        body: Any = raw_body
        if content_type.startswith("application/json") and raw_body:
            body = json.loads(raw_body)
        request = self._request_keep(method, raw_path, headers, raw_body, body=body)
        with self._lock:
            try:
                injected = self._injected_failure(method, request.path)
                if injected is not None:
                    raise StorageApiError(injected.status, injected.message)
                # Object names are percent-encoded in the path: match before decoding.
                action, params = route_find(_ROUTES, method, request.raw_path)
                if not action:
                    raise StorageApiError(
                        404, f"The requested URL {request.raw_path} was not found."
                    )
                return getattr(self, f"_{action}")(
                    query=request.query,
                    headers=request.headers,
                    raw_body=raw_body,
                    **{k: unquote(v) for k, v in params.items()},
                )
            except StorageApiError as error:
                return error.status, {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "errors": [
                            {"domain": "global", "reason": error.reason, "message": error.message}
                        ],
                    }
                }

    def _bucket(self, bucket: str) -> dict[str, StoredObject]:
        if bucket not in self.buckets:
            raise StorageApiError(404, "The specified bucket does not exist.")
        return self.buckets[bucket]

    def _object(self, bucket: str, name: str, query: dict[str, list[str]]) -> StoredObject:
        stored = self._bucket(bucket).get(name)
        wanted = query.get("generation", [""])[0]
        if stored is None or (wanted and int(wanted) != stored.generation):
            raise StorageApiError(404, f"No such object: {bucket}/{name}")
        return stored

    def _store(
        self, bucket: str, name: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> StoredObject:
        self._generation += 1
        stored = StoredObject(
            bucket, name, data, self._generation, content_type or "application/octet-stream"
        )
        stored.metadata = dict(metadata)
        self.buckets.setdefault(bucket, {})[name] = stored
        return stored

    def _get_bucket(self, *, bucket: str, **_: Any):
        self._bucket(bucket)
        return 200, {
            "kind": "storage#bucket",
            "id": bucket,
            "name": bucket,
            "location": "EUROPE-WEST4",
            "storageClass": "STANDARD",
            "metageneration": "1",
            "timeCreated": rfc3339(),
        }

    def _list_objects(self, *, bucket: str, query: dict[str, list[str]], **_: Any):
        prefix = query.get("prefix", [""])[0]
        delimiter = query.get("delimiter", [""])[0]
        size = min(int(query.get("maxResults", [self.page_size])[0]), self.page_size)
        start = query.get("pageToken", [""])[0]
        items, prefixes = [], set()
        for name in sorted(self._bucket(bucket)):
            if not name.startswith(prefix) or name <= start:
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
                continue
            items.append(self.buckets[bucket][name])
        page = items[:size]
        answer: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [o.resource(self.url) for o in page],
        }
        if prefixes:
            answer["prefixes"] = sorted(prefixes)
        if len(items) > size:
            answer["nextPageToken"] = page[-1].name
        return 200, answer

    def _get_object(self, *, bucket: str, name: str, query: dict[str, list[str]], **_: Any):
        return 200, self._object(bucket, name, query).resource(self.url)

    def _delete_object(self, *, bucket: str, name: str, query: dict[str, list[str]], **_: Any):
        self._object(bucket, name, query)
        del self.buckets[bucket][name]
        return 204, RawResponse(b"", "application/json")

    def _download(
        self, *, bucket: str, name: str, query: dict[str, list[str]], headers: dict[str, str], **_
    ):
        if query.get("alt") != ["media"]:
            raise StorageApiError(400, "a media download asks for alt=media")
        stored = self._object(bucket, name, query)
        resource = stored.resource(self.url)
        data, status = stored.data, 200
        extra = [
            ("x-goog-hash", f"crc32c={resource['crc32c']},md5={resource['md5Hash']}"),
            ("x-goog-generation", str(stored.generation)),
            ("x-goog-stored-content-length", str(len(stored.data))),
        ]
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("range", ""))
        if wanted:
            first = int(wanted.group(1))
            last = int(wanted.group(2)) if wanted.group(2) else len(data) - 1
            last = min(last, len(data) - 1)
            data, status = data[first : last + 1], 206
            extra.append(("Content-Range", f"bytes {first}-{last}/{len(stored.data)}"))
        return status, RawResponse(data, stored.content_type, tuple(extra))

    def _upload(
        self,
        *,
        bucket: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        raw_body: bytes,
        **_: Any,
    ):
        self._bucket(bucket)
        kind = query.get("uploadType", [""])[0]
        if kind == "multipart":
            metadata, data = _multipart(headers.get("content-type", ""), raw_body)
            name = metadata.get("name") or query.get("name", [""])[0]
            if not name:
                raise StorageApiError(400, "Required object name")
            stored = self._store(
                bucket, name, data, metadata.get("contentType", ""), metadata.get("metadata", {})
            )
            return 200, stored.resource(self.url)
        if kind == "resumable":
            metadata = json.loads(raw_body) if raw_body else {}
            name = metadata.get("name") or query.get("name", [""])[0]
            if not name:
                raise StorageApiError(400, "Required object name")
            upload_id = uuid.uuid4().hex
            self.sessions[upload_id] = {
                "bucket": bucket,
                "name": name,
                "content_type": headers.get("x-upload-content-type", "")
                or metadata.get("contentType", ""),
                "metadata": metadata.get("metadata", {}),
                "data": bytearray(),
            }
            location = (
                f"{self.url}/upload/storage/v1/b/{bucket}/o?uploadType=resumable"
                f"&upload_id={upload_id}"
            )
            return 200, RawResponse(b"", "text/plain", (("Location", location),))
        raise StorageApiError(400, f"uploadType {kind!r} is not supported")

    def _upload_chunk(
        self, *, query: dict[str, list[str]], headers: dict[str, str], raw_body: bytes, **_: Any
    ):
        session = self.sessions.get(query.get("upload_id", [""])[0])
        if session is None:
            raise StorageApiError(404, "No such upload session")
        match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", headers.get("content-range", ""))
        if match is None:
            raise StorageApiError(400, "Content-Range: bytes first-last/total expected")
        first, _last, total = match.groups()
        if first is not None:
            if int(first) != len(session["data"]):
                raise StorageApiError(400, "the chunk does not continue the upload")
            session["data"].extend(raw_body)
        if total != "*" and len(session["data"]) >= int(total):
            del self.sessions[query["upload_id"][0]]
            stored = self._store(
                session["bucket"],
                session["name"],
                bytes(session["data"]),
                session["content_type"],
                session["metadata"],
            )
            return 200, stored.resource(self.url)
        done = len(session["data"])
        extra = (("Range", f"bytes=0-{done - 1}"),) if done else ()
        return 308, RawResponse(b"", "text/plain", extra)


def _split(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"gs://([^/]+)/(.+)", uri)
    if match is None:
        raise ValueError(f"{uri} is not gs://bucket/name")
    return match.group(1), match.group(2)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """The metadata part (JSON) and the media part of a multipart/related upload."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        raise StorageApiError(400, "multipart upload without a boundary")
    marker = b"--" + boundary.group(1).encode()
    parts = [p for p in body.split(marker)[1:] if not p.startswith(b"--")]
    if len(parts) != 2:
        raise StorageApiError(400, "a multipart upload has a metadata and a media part")
    contents = []
    for part in parts:
        _head, _, content = part.partition(b"\r\n\r\n")
        contents.append(content.removesuffix(b"\r\n"))
    return json.loads(contents[0]), contents[1]

"""Cloud Storage (`gs://bucket/name`) through google-cloud-storage, for the lake import,
the artifact store and the lake's own location.

The client is built once per endpoint: Google's own (with the application default
credentials) unless `api_endpoint` is given, or the `GCS_API_ENDPOINT` environment
variable names one (an `http://host:port` speaking the JSON API, e.g. a local
stand-in), in which case it is called with anonymous credentials. The library's own
`STORAGE_EMULATOR_HOST` works as well.

Downloads stream to a file in the library's 8 KiB reads and check the object's CRC32C,
so memory stays flat whatever the object's size; uploads above 8 MiB go through a
resumable session in chunks.
"""

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

GS_URI = re.compile(r"^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220}[a-z0-9])/(?P<name>.*)\Z")
ENDPOINT_VARIABLE = "GCS_API_ENDPOINT"
UPLOAD_CHUNK_BYTES = 8 << 20  # resumable upload chunk (a multiple of 256 KiB)


class CloudStorageError(OSError):
    """An object is missing or Cloud Storage could not be reached; says which URI. An
    OSError, as a local file that cannot be read is, so callers handling I/O failures
    handle this one too."""


@dataclass(frozen=True)
class ObjectInfo:
    """What Cloud Storage says of one object: its URI, size in bytes, generation (the
    object's version: a rewrite gets a new one), and its checksums as the API gives
    them (base64 MD5, absent for composite objects; base64 CRC32C)."""

    uri: str
    size: int
    generation: int
    md5: str
    crc32c: str
    updated: str


def is_gs_uri(value: str | Path) -> bool:
    return str(value).startswith("gs://")


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, object name) of `gs://bucket/name`; ValueError for anything else."""
    match = GS_URI.match(str(uri))
    if match is None:
        raise ValueError(f"{uri} is not a Cloud Storage URI (gs://bucket/path)")
    return match.group("bucket"), match.group("name")


def storage_client(api_endpoint: str | None = None) -> Any:
    """A google.cloud.storage.Client for `api_endpoint` (default: GCS_API_ENDPOINT, then
    Google's). Cached: building a client reads credentials. CloudStorageError when no
    client can be built (Google's endpoint without credentials)."""
    try:
        return _client(api_endpoint or os.environ.get(ENDPOINT_VARIABLE) or "")
    except _errors() as error:
        raise CloudStorageError(f"no Cloud Storage client: {error}") from None


@lru_cache(maxsize=8)
def _client(api_endpoint: str) -> Any:
    from google.cloud import storage  # noqa: PLC0415 -- slow

    if not api_endpoint:
        return storage.Client()
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415 -- slow

    return storage.Client(
        project="local",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": api_endpoint},
    )


def _errors() -> tuple[type[Exception], ...]:
    from google.api_core import exceptions  # noqa: PLC0415 -- slow
    from google.auth import exceptions as auth_exceptions  # noqa: PLC0415 -- slow
    from requests import RequestException  # noqa: PLC0415 -- slow

    return (exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, RequestException)


def object_info(uri: str, *, client: Any = None) -> ObjectInfo:
    """The object's size, generation and checksums; CloudStorageError if it is absent."""
    bucket, name = split_uri(uri)
    client = client or storage_client()
    try:
        blob = client.bucket(bucket).get_blob(name)
    except _errors() as error:
        raise CloudStorageError(f"{uri}: {error}") from None
    if blob is None:
        raise CloudStorageError(f"{uri}: no such object")
    return ObjectInfo(
        uri=uri,
        size=int(blob.size or 0),
        generation=int(blob.generation or 0),
        md5=blob.md5_hash or "",
        crc32c=blob.crc32c or "",
        updated=blob.updated.isoformat() if blob.updated else "",
    )


def download_to_file(uri: str, path: str | Path, *, client: Any = None) -> ObjectInfo:
    """Stream the object at `uri` into the file `path` (replaced), pinned to the
    generation read first so a concurrent rewrite cannot mix two versions; the library
    checks the CRC32C. Returns what was downloaded."""
    info = object_info(uri, client=client)
    bucket, name = split_uri(uri)
    client = client or storage_client()
    blob = client.bucket(bucket).blob(name, generation=info.generation)
    try:
        blob.download_to_filename(str(path), checksum="auto")
    except _errors() as error:
        raise CloudStorageError(f"{uri}: download failed: {error}") from None
    return info


def download_bytes(uri: str, *, client: Any = None) -> bytes:
    """A small object's content (artifact metadata, a model file)."""
    bucket, name = split_uri(uri)
    client = client or storage_client()
    try:
        return client.bucket(bucket).blob(name).download_as_bytes(checksum="auto")
    except _errors() as error:
        if getattr(error, "code", None) == 404:
            raise CloudStorageError(f"{uri}: no such object") from None
        raise CloudStorageError(f"{uri}: download failed: {error}") from None


def upload_file(path: str | Path, uri: str, *, client: Any = None) -> None:
    """Upload the file at `path` to `uri` (replacing the object): one request up to
    8 MiB, a resumable session in 8 MiB chunks above."""
    bucket, name = split_uri(uri)
    client = client or storage_client()
    blob = client.bucket(bucket).blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    try:
        blob.upload_from_filename(str(path))
    except _errors() as error:
        raise CloudStorageError(f"{uri}: upload failed: {error}") from None


def upload_bytes(content: bytes, uri: str, *, client: Any = None) -> None:
    bucket, name = split_uri(uri)
    client = client or storage_client()
    try:
        client.bucket(bucket).blob(name).upload_from_string(content)
    except _errors() as error:
        raise CloudStorageError(f"{uri}: upload failed: {error}") from None


def list_uris(prefix_uri: str, *, client: Any = None) -> list[str]:
    """The URIs of every object under `gs://bucket/prefix`, sorted."""
    bucket, prefix = split_uri(prefix_uri)
    client = client or storage_client()
    try:
        return sorted(f"gs://{bucket}/{b.name}" for b in client.list_blobs(bucket, prefix=prefix))
    except _errors() as error:
        raise CloudStorageError(f"{prefix_uri}: listing failed: {error}") from None


def delete(uri: str, *, client: Any = None) -> None:
    bucket, name = split_uri(uri)
    client = client or storage_client()
    try:
        client.bucket(bucket).blob(name).delete()
    except _errors() as error:
        raise CloudStorageError(f"{uri}: delete failed: {error}") from None

"""The artifact store: where fitted models and their metadata go.

An artifact is a folder: `model.joblib` (the fitted model) and `metadata.json`
(hyperparameters, metrics, slices, data and code versions, the model file's SHA-256).
Its URI names the folder. The embedded default keeps artifacts in a local folder
(`file:///.../artifacts/<kind>/<run id>/`); production keeps them in Cloud Storage
(`gs://bucket/prefix/<kind>/<run id>/`, google-cloud-storage: `pipelines.cloud_storage`
says how the client finds its endpoint and credentials).

Loading an artifact unpickles it: only load artifacts this system wrote. The model
file's hash is checked against the metadata before it is unpickled.
"""

import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import joblib

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


class ArtifactError(Exception):
    """An artifact is missing, unreadable or does not match its recorded hash."""


class ArtifactStore(Protocol):
    """Writes and reads the files of artifact folders, addressed by URI."""

    def write(self, key: str, files: dict[str, bytes]) -> str:
        """Store the files under `key` (e.g. `forecasting/<run id>`); return the URI of
        the folder. Writing the same key again replaces the files."""
        ...

    def read(self, uri: str, name: str) -> bytes:
        """One file of the artifact folder at `uri`."""
        ...


class LocalArtifactStore:
    """Artifacts in a folder of this machine; URIs are `file://` URIs of the folders."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _folder(self, key: str) -> Path:
        folder = (self.root / key).resolve()
        if folder != self.root and self.root not in folder.parents:
            raise ArtifactError(f"artifact key {key!r} leaves the store")
        return folder

    def write(self, key: str, files: dict[str, bytes]) -> str:
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            # Write then rename, so a reader (or a retried run) never sees half a file.
            partial = folder / f".{name}.{uuid.uuid4().hex}.partial"
            partial.write_bytes(content)
            os.replace(partial, folder / name)
        return folder.as_uri() + "/"

    def read(self, uri: str, name: str) -> bytes:
        path = local_path(uri) / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"no {name} in the artifact at {uri}") from None


def local_path(uri: str) -> Path:
    """The folder of a `file://` URI or a plain path."""
    parsed = urlparse(str(uri))
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("", None) or len(parsed.scheme) == 1:  # a path (or C:\ on Windows)
        return Path(uri)
    raise ArtifactError(f"{uri} is not a local artifact")


class GcsArtifactStore:
    """Artifacts in Cloud Storage under `gs://bucket/prefix/`; URIs are the folders'
    `gs://` URIs (with a trailing slash)."""

    def __init__(self, root: str) -> None:
        from pipelines import cloud_storage  # noqa: PLC0415 -- slow

        self.storage = cloud_storage
        bucket, prefix = cloud_storage.split_uri(root.rstrip("/") + "/")
        self.root = f"gs://{bucket}/{prefix}"

    def write(self, key: str, files: dict[str, bytes]) -> str:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ArtifactError(f"artifact key {key!r} leaves the store")
        folder = f"{self.root}{'/'.join(parts)}/"
        # The metadata last: a reader that finds it finds the model file it names.
        for name in sorted(files, key=lambda n: n == METADATA_FILE):
            try:
                self.storage.upload_bytes(files[name], folder + name)
            except self.storage.CloudStorageError as error:
                raise ArtifactError(str(error)) from None
        return folder

    def read(self, uri: str, name: str) -> bytes:
        location = uri.rstrip("/") + "/" + name
        try:
            return self.storage.download_bytes(location)
        except self.storage.CloudStorageError as error:
            if "no such object" in str(error):
                raise ArtifactError(f"no {name} in the artifact at {uri}") from None
            message = str(error)
            raise ArtifactError(
                message if location in message else f"{location}: {message}"
            ) from None


def store_for(location: str | Path) -> ArtifactStore:
    """The store for a location: a plain path or `file://` URI gives the local store,
    `gs://bucket/prefix` the Cloud Storage store."""
    text = str(location)
    scheme = urlparse(text).scheme
    if scheme == "gs":
        return GcsArtifactStore(text)
    if scheme in ("", "file") or len(scheme) == 1:
        return LocalArtifactStore(local_path(text))
    raise ValueError(f"no artifact store for {scheme}:// URIs (use a path, file:// or gs://)")


@dataclass
class LoadedArtifact:
    model: Any
    metadata: dict[str, Any]


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def model_bytes(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def save_artifact(
    *, store: ArtifactStore, key: str, model: Any, metadata: dict[str, Any]
) -> tuple[str, str]:
    """Write the model and its metadata; return (artifact URI, model digest
    `sha256:<hex>`). Side effects: files in the store, replaced if the key exists."""
    content = model_bytes(model)
    digest = f"sha256:{sha256_hex(content)}"
    metadata = {**metadata, "model_file": MODEL_FILE, "model_sha256": digest}
    body = json.dumps(metadata, indent=2, sort_keys=True, default=str).encode()
    uri = store.write(key, {MODEL_FILE: content, METADATA_FILE: body})
    return uri, digest


def load_artifact(uri: str) -> LoadedArtifact:
    """The model and metadata at `uri`, after checking the model file's hash."""
    store = store_for(_store_root(uri))
    try:
        metadata = json.loads(store.read(uri, METADATA_FILE))
    except json.JSONDecodeError as error:
        raise ArtifactError(f"the metadata of {uri} is not JSON: {error}") from None
    content = store.read(uri, metadata.get("model_file", MODEL_FILE))
    if f"sha256:{sha256_hex(content)}" != metadata.get("model_sha256"):
        raise ArtifactError(f"the model file of {uri} does not match its recorded hash")
    return LoadedArtifact(model=joblib.load(io.BytesIO(content)), metadata=metadata)


def _store_root(uri: str) -> str:
    scheme = urlparse(str(uri)).scheme
    if scheme == "gs":
        return uri
    return str(local_path(uri).parent)

"""Vertex AI Model Registry: list models and their versions, move version aliases.

Talks to Vertex AI through google-cloud-aiplatform's low-level `ModelServiceClient`
over REST; imports no portal app. The registry sync maps what this returns onto the
portal's versions; on promotion it sets the target's alias (`production`, `canary`)
here, which Vertex AI moves off whichever version of the model held it before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import aiplatform_v1
from google.rpc import code_pb2

from worker.backends.vertex_common import (
    CAUGHT_ERRORS,
    DEFAULT_TIMEOUT_SECONDS,
    VertexError,
    client_options,
    timestamp,
    translate_error,
    vertex_labels,
)

# Vertex AI's rule for a version alias (MergeVersionAliasesRequest.version_aliases).
VERSION_ALIAS_PATTERN = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]\Z")


class RegistryUnavailable(VertexError):
    """The Model Registry could not be read or changed; `reason` says why."""


class UploadPending(Exception):
    """An upload's long-running operation is not done yet: poll the same operation
    again later (`upload_result`), never upload again (uploads are not idempotent)."""

    def __init__(self, operation_name: str) -> None:
        super().__init__(f"Vertex AI upload {operation_name} is not done yet")
        self.operation_name = operation_name


@dataclass(frozen=True)
class RegistryModel:
    """A model in the registry, as its default version describes it."""

    resource_name: str  # projects/{project}/locations/{location}/models/{model_id}
    model_id: str
    display_name: str
    description: str
    labels: dict[str, str]
    default_version_id: str
    create_time: datetime | None
    update_time: datetime | None


@dataclass(frozen=True)
class RegistryVersion:
    """One version of a registered model."""

    resource_name: str  # projects/{project}/locations/{location}/models/{model_id}@{version}
    model_resource_name: str
    model_id: str
    version_id: str
    display_name: str
    description: str
    version_description: str
    aliases: tuple[str, ...]
    labels: dict[str, str]
    create_time: datetime | None
    update_time: datetime | None
    artifact_uri: str
    container_image: str


class VertexModelRegistry:
    """The Vertex AI Model Registry of one project and region.

    `api_endpoint` defaults to the region's Vertex AI host; an `http://host:port`
    endpoint (a local stand-in) is spoken to over plain HTTP. `credentials` defaults
    to Application Default Credentials (the workload identity on GKE).
    """

    def __init__(
        self,
        project: str,
        location: str,
        api_endpoint: str | None = None,
        credentials: Any = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        page_size: int = 100,
    ) -> None:
        self.project = project
        self.location = location
        self.timeout = timeout
        self.page_size = page_size
        self._client = aiplatform_v1.ModelServiceClient(
            credentials=credentials,
            transport="rest",
            client_options=client_options(location, api_endpoint),
        )

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def list_models(self, *, filter: str | None = None) -> list[RegistryModel]:
        """Every model in the project and region, all pages; `filter` as Vertex AI's
        ListModels filter (e.g. `labels.portal-model="demand-forecasting"`)."""
        request = aiplatform_v1.ListModelsRequest(
            parent=self.parent, page_size=self.page_size, filter=filter or ""
        )
        try:
            return [
                _model_from(model)
                for model in self._client.list_models(request=request, timeout=self.timeout)
            ]
        except CAUGHT_ERRORS as error:
            raise _unavailable(error, "list models") from error

    def list_versions(self, model_resource_name: str) -> list[RegistryVersion]:
        """Every version of one model, all pages, in the order Vertex AI lists them."""
        request = aiplatform_v1.ListModelVersionsRequest(
            name=model_resource_name, page_size=self.page_size
        )
        try:
            return [
                _version_from(version)
                for version in self._client.list_model_versions(
                    request=request, timeout=self.timeout
                )
            ]
        except CAUGHT_ERRORS as error:
            raise _unavailable(error, "list model versions") from error

    def set_aliases(
        self,
        version_resource_name: str,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> RegistryVersion:
        """Add and remove aliases of one version in one MergeVersionAliases call.

        Side effect in Vertex AI: an added alias held by another version of the model
        moves to this one. Returns the version as Vertex AI holds it afterwards.
        """
        if "@" not in version_resource_name:
            raise ValueError(
                f"{version_resource_name!r} names no version (models/{{id}}@{{version}})"
            )
        to_add, to_remove = list(add), list(remove)
        if not to_add and not to_remove:
            raise ValueError("set_aliases needs at least one alias to add or remove")
        overlap = set(to_add) & set(to_remove)
        if overlap:
            # Vertex AI cancels the two out silently; a caller asking for both has a bug.
            raise ValueError(f"aliases both added and removed: {sorted(overlap)}")
        for alias in (*to_add, *to_remove):
            if not VERSION_ALIAS_PATTERN.match(alias):
                raise ValueError(f"{alias!r} is not a valid Vertex AI version alias")
        request = aiplatform_v1.MergeVersionAliasesRequest(
            name=version_resource_name,
            version_aliases=[*to_add, *(f"-{alias}" for alias in to_remove)],
        )
        try:
            model = self._client.merge_version_aliases(request=request, timeout=self.timeout)
        except CAUGHT_ERRORS as error:
            raise _unavailable(error, "merge version aliases") from error
        return _version_from(model)

    def upload_version(self, *, wait_seconds: float | None = None, **model: Any) -> RegistryVersion:
        """Upload a model version and wait for it (`upload_start`'s arguments): at most
        `wait_seconds` (default: the timeout), then UploadPending with the operation."""
        operation_name = self.upload_start(**model)
        return self.upload_wait(
            operation_name, wait_seconds=self.timeout if wait_seconds is None else wait_seconds
        )

    def upload_start(
        self,
        *,
        display_name: str,
        artifact_uri: str,
        container_image: str,
        labels: dict[str, str] | None = None,
        description: str = "",
        version_description: str = "",
        parent_model: str = "",
        version_aliases: Iterable[str] = (),
    ) -> str:
        """Start uploading a model version (a new model when `parent_model` is empty);
        returns the name of the long-running operation, which is usually not done yet.

        Side effect in Vertex AI: one upload, every time this is called (keep the
        operation's name and follow it with `upload_result`). Labels are cleaned as
        every Vertex AI label is (`vertex_labels`).
        """
        model = aiplatform_v1.Model(
            display_name=display_name,
            description=description,
            version_description=version_description,
            artifact_uri=artifact_uri,
            container_spec=aiplatform_v1.ModelContainerSpec(image_uri=container_image),
            labels=vertex_labels(labels),
            version_aliases=list(version_aliases),
        )
        request = aiplatform_v1.UploadModelRequest(
            parent=f"projects/{self.project}/locations/{self.location}",
            parent_model=parent_model,
            model=model,
        )
        try:
            # The returned Operation is not waited on: its result() raises the built-in
            # TimeoutError while Vertex AI is still working, which is the usual case.
            operation = self._client.upload_model(request=request, timeout=self.timeout)
        except CAUGHT_ERRORS as error:
            raise _unavailable(error, "upload model") from error
        return operation.operation.name

    def upload_result(self, operation_name: str) -> RegistryVersion | None:
        """The version an upload made, or None while its operation is not done; a
        failed upload raises RegistryUnavailable with Google's reason."""
        try:
            operation = self._client.get_operation(
                request={"name": operation_name}, timeout=self.timeout
            )
        except CAUGHT_ERRORS as error:
            raise _unavailable(error, "get upload operation") from error
        if not operation.done:
            return None
        if operation.HasField("error"):
            raise RegistryUnavailable(
                operation.error.message,
                operation="upload model",
                status=_rpc_code_name(operation.error.code),
            )
        response = aiplatform_v1.UploadModelResponse.deserialize(operation.response.value)
        version_name = f"{response.model}@{response.model_version_id}"
        for version in self.list_versions(response.model):
            if version.resource_name == version_name:
                return version
        raise RegistryUnavailable(
            f"uploaded {version_name} but it is not listed",
            operation="upload model",
            status="NOT_FOUND",
        )

    def upload_wait(self, operation_name: str, *, wait_seconds: float) -> RegistryVersion:
        """Poll the upload until it is done, for at most `wait_seconds` (0: look once);
        UploadPending when it is still not done."""
        deadline = time.monotonic() + wait_seconds
        delay = 0.2
        while True:
            version = self.upload_result(operation_name)
            if version is not None:
                return version
            if time.monotonic() + delay > deadline:
                raise UploadPending(operation_name)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def version_find(self, *, labels: dict[str, str]) -> RegistryVersion | None:
        """A version carrying all these labels (cleaned as uploads clean them), in any
        model of the project: how a retried upload finds the one an earlier attempt made."""
        wanted = vertex_labels(labels)
        for model in self.list_models():
            for version in self.list_versions(model.resource_name):
                if all(version.labels.get(k) == v for k, v in wanted.items()):
                    return version
        return None


def _rpc_code_name(code: int) -> str:
    try:
        return code_pb2.Code.Name(code)
    except ValueError:
        return "UNKNOWN"


def _unavailable(error: Exception, operation: str) -> RegistryUnavailable:
    return translate_error(error, operation=operation, error_class=RegistryUnavailable)


def split_version_name(resource_name: str) -> tuple[str, str]:
    """(model resource name, version id) from `.../models/{id}@{version}`."""
    model_name, _, version_id = resource_name.partition("@")
    return model_name, version_id


def _model_from(model: aiplatform_v1.Model) -> RegistryModel:
    model_name, _ = split_version_name(model.name)
    return RegistryModel(
        resource_name=model_name,
        model_id=model_name.rsplit("/", 1)[-1],
        display_name=model.display_name,
        description=model.description,
        labels=dict(model.labels),
        default_version_id=model.version_id,
        create_time=timestamp(model, "create_time"),
        update_time=timestamp(model, "update_time"),
    )


def _version_from(model: aiplatform_v1.Model) -> RegistryVersion:
    # ListModelVersions names each version by its model; the version id comes apart.
    model_name, named_version = split_version_name(model.name)
    version_id = model.version_id or named_version
    return RegistryVersion(
        resource_name=f"{model_name}@{version_id}",
        model_resource_name=model_name,
        model_id=model_name.rsplit("/", 1)[-1],
        version_id=version_id,
        display_name=model.display_name,
        description=model.description,
        version_description=model.version_description,
        aliases=tuple(model.version_aliases),
        labels=dict(model.labels),
        create_time=timestamp(model, "version_create_time"),
        update_time=timestamp(model, "version_update_time"),
        artifact_uri=model.artifact_uri,
        container_image=model.container_spec.image_uri,
    )

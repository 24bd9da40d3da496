"""A local stand-in for the Kubernetes API server, the two lists the deployment
reconciler reads: namespaces and the pods of one namespace.

It answers the paths the official `kubernetes` client calls, in the API server's JSON
format (`kind: NamespaceList` / `PodList`, `metadata.continue` for the next page,
errors as a `Status` object with `reason` and `code`), honours `labelSelector`
(equality, inequality and existence terms, comma-separated as the API server parses
them) and `limit` / `continue` paging, and records every request so tests can assert
exactly what the client sent.

    GET /api/v1/namespaces?labelSelector=&limit=&continue=
    GET /api/v1/namespaces/{namespace}/pods?limit=&continue=

With `token` set, a request without `Authorization: Bearer <token>` is refused 401, as
the API server refuses an unauthenticated client.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.json_http import Failure, JsonHttpFake, RecordedRequest, rfc3339

_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 410: "Expired"}
_REASONS |= {500: "InternalError", 503: "ServiceUnavailable"}
_NAMESPACES = re.compile(r"^/api/v1/namespaces$")
_PODS = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods$")


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """The API server's label selector grammar, the parts tests use: `k`, `!k`, `k=v`,
    `k==v`, `k!=v`, joined by commas (all must hold)."""
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class FakeKubernetesServer(JsonHttpFake):
    """Namespaces and pods in memory, on 127.0.0.1."""

    token: str = ""
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    # --- the cluster's state, as tests set it -----------------------------------------

    def add_namespace(self, name: str, **labels: str) -> None:
        with self._lock:
            self.namespaces[name] = {"kubernetes.io/metadata.name": name, **labels}

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        image: str,
        image_id: str | None = None,
        phase: str = "Running",
        container: str = "model-server",
        init_images: tuple[str, ...] = (),
        labels: dict[str, str] | None = None,
    ) -> None:
        """A pod with one container running `image`; `image_id` is what the kubelet
        reports it pulled (`registry/path@sha256:...`), None for a pod not started yet."""
        spec_containers = [{"name": container, "image": image}]
        statuses = []
        if image_id is not None:
            statuses.append(
                {
                    "name": container,
                    "image": image,
                    "imageID": image_id,
                    "ready": phase == "Running",
                    "restartCount": 0,
                    "started": phase == "Running",
                    "state": {"running": {"startedAt": rfc3339()}},
                }
            )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "labels": labels or {"app": "model-server"},
                "creationTimestamp": rfc3339(),
            },
            "spec": {
                "containers": spec_containers,
                "initContainers": [
                    {"name": f"init-{index}", "image": init}
                    for index, init in enumerate(init_images)
                ],
            },
            "status": {"phase": phase, "containerStatuses": statuses},
        }
        with self._lock:
            self.pods[(namespace, name)] = pod

    def remove_pod(self, namespace: str, name: str) -> None:
        with self._lock:
            self.pods.pop((namespace, name), None)

    def fail(self, path_pattern: str, status: int, message: str, times: int | None = 1) -> None:
        """The next `times` GETs whose path matches get this error (None: until cleared)."""
        with self._lock:
            self._failures.append(Failure("GET", re.compile(path_pattern), status, message, times))

    # --- the API ----------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, query, None, headers, raw_path=raw_path)
            )
            if self.token and headers.get("Authorization") != f"Bearer {self.token}":
                return 401, _status(401, "Unauthorized")
            failure = self._injected_failure(method, path)
            if failure is not None:
                return failure.status, _status(failure.status, failure.message)
            if method != "GET":
                return 405, _status(405, "the fake only lists")
            selector = query.get("labelSelector", [""])[0]
            if _NAMESPACES.match(path):
                items = [
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": name, "labels": labels},
                        "status": {"phase": "Active"},
                    }
                    for name, labels in sorted(self.namespaces.items())
                    if _selector_matches(selector, labels)
                ]
                return 200, self._page("NamespaceList", items, query)
            match = _PODS.match(path)
            if match:
                namespace = match["namespace"]
                if namespace not in self.namespaces:
                    return 404, _status(404, f'namespaces "{namespace}" not found')
                items = [
                    pod
                    for (pod_namespace, _), pod in sorted(self.pods.items())
                    if pod_namespace == namespace
                    and _selector_matches(selector, pod["metadata"]["labels"])
                ]
                return 200, self._page("PodList", items, query)
            return 404, _status(404, f"the server could not find the requested resource {path}")

    def _page(self, kind: str, items: list[dict[str, Any]], query: dict[str, list[str]]):
        start = int(query.get("continue", ["0"])[0] or 0)
        limit = int(query.get("limit", ["0"])[0] or 0)
        end = start + limit if limit else len(items)
        metadata: dict[str, Any] = {"resourceVersion": "12345"}
        if end < len(items):
            metadata["continue"] = str(end)
        return {"kind": kind, "apiVersion": "v1", "metadata": metadata, "items": items[start:end]}

"""What model images a Kubernetes cluster runs, read through the official `kubernetes`
client (CoreV1Api: list namespaces, list the pods of a namespace).

Imports no portal app: callers say which cluster and get plain records back.

A governed namespace is one labelled `model-governance/target` (staging, canary or
production) and `model-governance/model` (the model's slug); the overlays in
`deploy/k8s` label every model server's namespace so. Every container of every pod that
is running or about to run there is reported, init containers too: Binary
Authorization guards the same namespaces whatever a pod's labels say, and so does the
reconciler, so an image started with no label at all is still seen.

The digest is the one the kubelet reports it pulled (`status.containerStatuses[].imageID`,
`registry/path@sha256:...`), else the one the pod spec pins (`image@sha256:...`) for a
container that has not started yet; empty when neither names one (an image by tag only,
not yet pulled).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

TARGET_LABEL = "model-governance/target"
MODEL_LABEL = "model-governance/model"
IN_CLUSTER = "in-cluster"
DEFAULT_TIMEOUT_SECONDS = 20.0
PAGE_SIZE = 500
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
# Pods that are not running and will not run again hold no image worth a finding.
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


class ClusterUnavailable(Exception):
    """The API server could not be reached, refused the credentials or the list (RBAC),
    or answered with something that is no list; the message says which."""


@dataclass(frozen=True)
class RunningImage:
    """One container of one pod in a governed namespace."""

    namespace: str
    pod: str
    container: str
    model: str  # the namespace's model-governance/model label
    target: str  # the namespace's model-governance/target label
    image: str  # as the pod spec names it
    digest: str  # sha256:<64 hex>, or "" when nothing names one yet


def _api(api_url: str) -> client.CoreV1Api:
    configuration = client.Configuration()
    if api_url == IN_CLUSTER:
        try:
            # The pod's service account token and the cluster's CA, mounted by Kubernetes.
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise ClusterUnavailable(f"not running in a cluster: {exc}") from None
    else:
        configuration.host = api_url.rstrip("/")
    # One attempt per call: the beat schedule is the retry.
    configuration.retries = urllib3.Retry(total=0, connect=0, read=0, redirect=0)
    return client.CoreV1Api(client.ApiClient(configuration))


def _pages(list_call, timeout: float, **kwargs) -> Iterator:
    token = None
    while True:
        try:
            page = list_call(limit=PAGE_SIZE, _continue=token, _request_timeout=timeout, **kwargs)
        except ApiException as exc:
            raise ClusterUnavailable(f"the API server answered {exc.status} {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ClusterUnavailable(
                f"the API server cannot be reached ({type(exc).__name__})"
            ) from None
        yield from page.items or []
        token = page.metadata.var_continue if page.metadata else None
        if not token:
            return


def _digest_of(image: str, image_id: str | None) -> str:
    for reference in (image_id or "", image):
        found = _DIGEST.search(reference)
        if found:
            return found[1]
    return ""


def running_images(*, api_url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[RunningImage]:
    """Every container image in the cluster's governed namespaces.

    `api_url` is "in-cluster" (the pod's service account) or the API server's URL (a
    `kubectl proxy`, or a stand-in in the tests). Needs `list` on namespaces and pods.
    Raises ClusterUnavailable when any list fails, so a caller never acts on half a
    picture of the cluster.
    """
    api = _api(api_url)
    found: list[RunningImage] = []
    namespaces = _pages(api.list_namespace, timeout, label_selector=f"{TARGET_LABEL},{MODEL_LABEL}")
    for namespace in list(namespaces):
        labels = namespace.metadata.labels or {}
        name = namespace.metadata.name
        for pod in _pages(api.list_namespaced_pod, timeout, namespace=name):
            if pod.status is not None and pod.status.phase in _FINISHED_PHASES:
                continue
            pulled = {
                status.name: status.image_id
                for status in [
                    *((pod.status.container_statuses or []) if pod.status else []),
                    *((pod.status.init_container_statuses or []) if pod.status else []),
                ]
            }
            containers = [*(pod.spec.init_containers or []), *(pod.spec.containers or [])]
            found.extend(
                RunningImage(
                    namespace=name,
                    pod=pod.metadata.name,
                    container=container.name,
                    model=labels[MODEL_LABEL],
                    target=labels[TARGET_LABEL],
                    image=container.image or "",
                    digest=_digest_of(container.image or "", pulled.get(container.name)),
                )
                for container in containers
            )
    return found

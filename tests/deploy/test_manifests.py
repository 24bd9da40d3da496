"""The Kubernetes manifests under deploy/k8s, rendered the way a release renders them
(`kubectl kustomize` on every overlay) and checked against the Kubernetes API schemas
(kubernetes-validate, strict: an unknown or misspelt field fails), then against what the
runbook promises of every process."""

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MODELS = ("demand-forecasting", "customer-segmentation", "product-recommendation")
# The Kubernetes version of the schemas: GKE's regular channel.
KUBERNETES_VERSION = "1.33"
# Custom resources have no schema in the Kubernetes API; these are the only ones the
# manifests may use, each with the fields its controller requires.
CUSTOM_RESOURCES = {
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"): ("provider", "parameters"),
}


def overlay_dirs() -> list[Path]:
    return sorted(path.parent for path in (K8S / "overlays").rglob("kustomization.yaml"))


def render(directory: Path) -> list[dict]:
    return [dict(doc) for doc in _render(directory)]


@functools.cache
def _render(directory: Path) -> tuple[dict, ...]:
    if shutil.which("kubectl") is None:
        reason = "needs kubectl (its built-in kustomize renders the overlays)"
        if os.environ.get("PORTAL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (PORTAL_REQUIRE_SERVICES=1: nothing may be skipped)")
        pytest.skip(reason)
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def rendered(directory: Path, kind: str) -> Iterator[dict]:
    return (doc for doc in render(directory) if doc["kind"] == kind)


def pod_specs(docs: list[dict]) -> Iterator[tuple[dict, dict]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def overlay_id(path: Path) -> str:
    return str(path.relative_to(K8S / "overlays"))


@pytest.mark.parametrize("overlay", overlay_dirs(), ids=overlay_id)
def test_overlay_renders_to_resources_valid_against_the_kubernetes_schemas(overlay):
    """Every overlay renders, and every resource in it passes the Kubernetes schema in
    strict mode; custom resources are only the known ones, with their required fields."""
    docs = render(overlay)
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CUSTOM_RESOURCES:
            assert all(field in doc["spec"] for field in CUSTOM_RESOURCES[key]), doc
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_overlays_cover_every_process_in_every_environment():
    """Staging and production render the web, worker, beat and migrations of the portal
    and one model server per model in its own namespace; canary renders the three model
    servers in their canary namespaces."""
    expected = {("governance-portal", name) for name in ("web", "worker", "beat")}
    for environment in ("staging", "production"):
        docs = render(K8S / "overlays" / environment)
        deployments = {
            (d["metadata"]["namespace"], d["metadata"]["name"].removeprefix("governance-portal-"))
            for d in docs
            if d["kind"] == "Deployment"
        }
        assert deployments == expected | {(f"ml-{model}", "model-server") for model in MODELS}
        jobs = [d["metadata"]["name"] for d in docs if d["kind"] == "Job"]
        assert jobs == ["governance-portal-migrate"]
    canary = render(K8S / "overlays" / "canary")
    assert {d["metadata"]["namespace"] for d in canary if d["kind"] == "Deployment"} == {
        f"ml-{model}-canary" for model in MODELS
    }


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_http_processes_are_probed_on_readyz_and_healthz(environment):
    """The web pods and the model servers are ready on /readyz and alive on /healthz;
    workers, which serve no HTTP, are checked with a Celery ping."""
    for deployment, spec in pod_specs(render(K8S / "overlays" / environment)):
        container = spec["containers"][0]
        component = deployment["metadata"]["labels"].get("component", "model-server")
        if component in ("web", "model-server"):
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        elif component == "worker":
            assert "ping" in container["livenessProbe"]["exec"]["command"][-1]


@pytest.mark.parametrize("environment", ["staging", "canary", "production"])
def test_every_pod_runs_locked_down_with_resources(environment):
    """Every container runs as the image's non-root user on a read-only root file system
    without privilege escalation or capabilities, asks for CPU and memory and is capped
    in memory; secrets arrive from the Secret Manager volume, never as literal values."""
    docs = render(K8S / "overlays" / environment)
    assert not [d for d in docs if d["kind"] == "Secret"]
    for _, spec in pod_specs(docs):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}
            assert "memory" in container["resources"]["limits"]
            for variable in container.get("env", []):
                assert not any(
                    word in variable["name"] for word in ("SECRET", "PASSWORD", "TOKEN", "KEY")
                ), variable
        csi = [v for v in spec.get("volumes", []) if "csi" in v]
        sources = [source for c in spec["containers"] for source in c.get("envFrom", [])]
        if any("secretRef" in source for source in sources):
            assert csi[0]["csi"]["driver"] == "secrets-store.csi.k8s.io"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_scaling_disruption_and_zone_spread(environment):
    """Web scales on CPU and workers on queue depth; every autoscaled process has a
    PodDisruptionBudget and spreads across zones; beat is exactly one pod, never two
    during a rollout, and never autoscaled."""
    docs = render(K8S / "overlays" / environment)
    by_kind: dict[str, dict[tuple[str, str], dict]] = {}
    for doc in docs:
        key = (doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        by_kind.setdefault(doc["kind"], {})[key] = doc
    hpas = by_kind["HorizontalPodAutoscaler"]
    web = hpas[("governance-portal", "governance-portal-web")]["spec"]["metrics"][0]
    assert web["resource"]["name"] == "cpu"
    worker = hpas[("governance-portal", "governance-portal-worker")]["spec"]["metrics"][0]
    assert worker["type"] == "External" and "redis_key_size" in worker["external"]["metric"]["name"]
    for (namespace, name), hpa in hpas.items():
        target = by_kind["Deployment"][(namespace, hpa["spec"]["scaleTargetRef"]["name"])]
        assert (namespace, name) in by_kind["PodDisruptionBudget"]
        spread = target["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert "topology.kubernetes.io/zone" in {c["topologyKey"] for c in spread}
    beat = by_kind["Deployment"][("governance-portal", "governance-portal-beat")]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert not [h for h in hpas.values() if h["spec"]["scaleTargetRef"]["name"].endswith("beat")]
    if environment == "production":
        assert hpas[("governance-portal", "governance-portal-web")]["spec"]["minReplicas"] >= 3
        for model in MODELS:
            assert hpas[(f"ml-{model}", "model-server")]["spec"]["minReplicas"] >= 3


@pytest.mark.parametrize("environment", ["staging", "canary", "production"])
def test_every_namespace_denies_by_default(environment):
    """Each namespace has a NetworkPolicy selecting every pod with no rule (deny all in
    and out), and its pods' service accounts are bound to Google service accounts of the
    environment's project through Workload Identity."""
    docs = render(K8S / "overlays" / environment)
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    assert namespaces
    denying = {
        d["metadata"]["namespace"]
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"] == {}
        and set(d["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and "ingress" not in d["spec"]
        and "egress" not in d["spec"]
    }
    assert denying == namespaces
    project = "zm-mlops-staging" if environment == "staging" else "zm-mlops-prod"
    for account in (d for d in docs if d["kind"] == "ServiceAccount"):
        bound = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert bound.endswith(f"@{project}.iam.gserviceaccount.com"), bound


def test_graceful_shutdown_outlasts_the_work_in_flight():
    """Web and model server pods leave the Service before they stop (preStop pause) and
    their grace period covers gunicorn's graceful timeout after it; workers get five
    minutes to finish their tasks (Celery's warm shutdown)."""
    docs = render(K8S / "overlays" / "production")
    gunicorn = (ROOT / "deploy" / "gunicorn.conf.py").read_text()
    graceful = int(gunicorn.split("graceful_timeout = ")[1].split()[0])
    for deployment, spec in pod_specs(docs):
        name = deployment["metadata"]["name"]
        container = spec["containers"][0]
        if name.endswith(("-web", "model-server")):
            pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
            assert spec["terminationGracePeriodSeconds"] > pause + graceful
        if name.endswith("-worker"):
            assert spec["terminationGracePeriodSeconds"] >= 300


def test_serving_namespaces_carry_the_label_binary_authorization_enforces():
    """Production and staging model namespaces are labelled as serving namespaces; canary
    namespaces are not (they run before the board's production approval). Every model
    namespace names its model and target, which the deployment reconciler reads."""
    for environment, label in (
        ("production", "serving"),
        ("staging", "serving"),
        ("canary", "canary"),
    ):
        seen = set()
        for namespace in rendered(K8S / "overlays" / environment, "Namespace"):
            name = namespace["metadata"]["name"]
            if name.startswith("ml-"):
                model = name.removeprefix("ml-").removesuffix("-canary")
                assert namespace["metadata"]["labels"] == {
                    f"model-governance/{label}": "true",
                    "model-governance/model": model,
                    "model-governance/target": environment,
                }
                seen.add(model)
        assert seen == set(MODELS)


def test_only_the_production_workers_read_the_cluster_and_only_namespaces_and_pods():
    """The reconciler's rights: list namespaces and pods, bound to the workers' service
    account, whose token only the worker pods mount; staging's portal has none."""
    docs = render(K8S / "overlays" / "production" / "portal")
    (role,) = (d for d in docs if d["kind"] == "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces", "pods"], "verbs": ["list"]}
    ]
    (binding,) = (d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "governance-portal-worker",
            "namespace": "governance-portal",
        }
    ]
    mounting = {
        deployment["metadata"]["name"]
        for deployment, spec in pod_specs(docs)
        if spec.get("automountServiceAccountToken")
    }
    assert mounting == {"governance-portal-worker"}
    (config,) = (d for d in docs if d["kind"] == "ConfigMap")
    assert config["data"]["RECONCILER_KUBERNETES_API"] == "in-cluster"
    staging = render(K8S / "overlays" / "staging" / "portal")
    assert not [d for d in staging if d["kind"].startswith("ClusterRole")]
    assert not [s for _, s in pod_specs(staging) if s.get("automountServiceAccountToken")]


def test_dockerfile_is_multi_stage_pinned_non_root_without_build_tools():
    """The image is built in one stage and run from another based on the same Python
    image pinned by digest; the final stage copies the built environment, installs no
    compiler or pip package, and runs as a numeric non-root user."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = text.split("\nFROM ")
    assert len(stages) >= 3, "a build stage and a final stage"
    base_line = next(line for line in text.splitlines() if line.startswith("ARG PYTHON_IMAGE="))
    assert "@sha256:" in base_line and len(base_line.rsplit("@sha256:", 1)[1]) == 64
    final = stages[-1]
    assert final.startswith("${PYTHON_IMAGE} AS runtime")
    assert "COPY --from=build /opt/venv /opt/venv" in final
    for tool in ("gcc", "build-essential", "pip install", "python3-dev"):
        assert tool not in final, tool
    assert "\nUSER 10001:10001" in final


def _share_path(spec: dict, container: dict, path: str) -> tuple[str, str, bool] | None:
    """Where `path` inside `container` lives on an NFS share: (server, path on the
    share, mounted read-only), through the deepest mount holding it; None when no NFS
    volume holds it."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    mounts = sorted(
        (
            m
            for m in container.get("volumeMounts", [])
            if f"{path}/".startswith(f"{m['mountPath']}/")
        ),
        key=lambda m: len(m["mountPath"]),
    )
    if not mounts or "nfs" not in volumes[mounts[-1]["name"]]:
        return None
    mount, nfs = mounts[-1], volumes[mounts[-1]["name"]]["nfs"]
    inside = path.removeprefix(mount["mountPath"]).lstrip("/")
    read_only = bool(mount.get("readOnly") or nfs.get("readOnly"))
    return nfs["server"], f"{nfs['path'].rstrip('/')}/{inside}".rstrip("/"), read_only


def _flag(command: list[str], name: str) -> str:
    (value,) = [part.split("=", 1)[1] for part in command if part.startswith(f"{name}=")]
    return value


@pytest.mark.parametrize("environment", ["staging", "canary", "production"])
def test_model_servers_log_predictions_and_read_the_portals_suppression_list(environment):
    """Every model server listens on the pod's address, appends its prediction log to
    the monitoring share (writable) and reads the suppression list from it (read-only);
    in staging and production the portal's web and worker pods write the list to, and
    read the log from, the very same places on that share."""
    docs = render(K8S / "overlays" / environment)
    servers = [(d, s) for d, s in pod_specs(docs) if d["metadata"]["name"] == "model-server"]
    assert len(servers) == len(MODELS)
    places = set()
    for _, spec in servers:
        (container,) = spec["containers"]
        command = container["command"]
        assert command[:3] == ["python", "-m", "serving"]
        # Every interface of the pod: the Service and the probes reach it there.
        assert _flag(command, "--host") == "0.0.0.0"  # noqa: S104
        log = _share_path(spec, container, _flag(command, "--prediction-log-dir"))
        listed = _share_path(spec, container, _flag(command, "--suppression-list"))
        assert log is not None and listed is not None, command
        assert log[2] is False, "the server must be able to append its log"
        assert listed[2] is True, "the server only reads the suppression list"
        places.add((log[:2], listed[:2]))
    assert len(places) == 1, places  # every model on one share
    ((log_place, list_place),) = places
    if environment == "canary":
        return
    (config,) = (d for d in docs if d["kind"] == "ConfigMap" and "portal" in d["metadata"]["name"])
    for deployment, spec in pod_specs(docs):
        if deployment["metadata"].get("labels", {}).get("component") not in ("web", "worker"):
            continue
        container = spec["containers"][0]
        written = _share_path(spec, container, config["data"]["DSAR_SUPPRESSION_LIST"])
        read = _share_path(spec, container, config["data"]["MONITORING_PREDICTION_LOG_DIR"])
        assert written is not None and written[:2] == list_place and written[2] is False
        assert read is not None and read[:2] == log_place

"""The delivery configs under deploy/: read by the official clients' own types (Cloud
Build's Build, Cloud Deploy's DeliveryPipeline and Target: an unknown or misspelt field
fails to parse), the GitHub Actions workflow against the published workflow schema, and
the Cloud Build gate step run as written against the portal on a live test server."""

import json
import os
import subprocess
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml
from google.cloud import deploy_v1
from google.cloud.devtools import cloudbuild_v1

from governance.reviews.choices import Verdict
from governance.reviews.services import review_decide
from tests.deploy import test_gate_check_live as gate_check_live

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MODELS = ("demand-forecasting", "customer-segmentation", "product-recommendation")
VENDORED = files("check_jsonschema") / "builtin_schemas" / "vendor"
# The people, token and version of gate-check.sh's own live tests.
board = gate_check_live.board
token = gate_check_live.token
version = gate_check_live.version


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def build_of(path: Path) -> cloudbuild_v1.Build:
    (doc,) = load_all(path)
    return cloudbuild_v1.Build.from_json(json.dumps(doc), ignore_unknown_fields=False)


def clouddeploy_resources(path: Path) -> dict[str, dict[str, object]]:
    """The resources of a `gcloud deploy apply` file as Cloud Deploy's own messages:
    metadata's name, annotations and labels move to the top, as gcloud sends them."""
    parsed: dict[str, dict[str, object]] = {}
    for doc in load_all(path):
        assert doc.pop("apiVersion") == "deploy.cloud.google.com/v1"
        kind = doc.pop("kind")
        doc.update(doc.pop("metadata"))
        message = {"DeliveryPipeline": deploy_v1.DeliveryPipeline, "Target": deploy_v1.Target}
        parsed.setdefault(kind, {})[doc["name"]] = message[kind].from_json(
            json.dumps(doc), ignore_unknown_fields=False
        )
    return parsed


@pytest.mark.parametrize("path", ["models/cloudbuild.yaml", "cloudbuild.yaml"])
def test_cloudbuild_configs_parse_as_cloud_build_builds(path):
    """Both Cloud Build configs are valid `Build` messages and pass the published
    cloudbuild schema."""
    build = build_of(DEPLOY / path)
    assert build.steps
    schema = json.loads((VENDORED / "cloudbuild.json").read_text())
    (doc,) = load_all(DEPLOY / path)
    jsonschema.validate(doc, schema)


def test_model_build_tests_builds_registers_reviews_waits_on_the_gate_then_releases():
    """The model build's steps run in this order; the gate step calls gate-check.sh with
    the portal token from Secret Manager, and the release names the model's skaffold file,
    the pipeline and the annotations the portal reads the version from."""
    build = build_of(DEPLOY / "models" / "cloudbuild.yaml")
    steps = {step.id: step for step in build.steps}
    assert list(steps) == ["test", "build", "push", "register", "review", "gate", "release"]
    assert "deploy/ci/gate-check.sh" in steps["gate"].script
    for step in ("register", "review", "gate"):
        assert list(steps[step].secret_env) == ["PORTAL_TOKEN"]
    assert build.available_secrets.secret_manager[0].env == "PORTAL_TOKEN"
    assert build.options.automap_substitutions is True
    release = steps["release"].script
    assert "--delivery-pipeline=ml-models" in release
    assert '--skaffold-file="deploy/models/skaffold/$_MODEL.yaml"' in release
    assert "model-governance/model=$_MODEL,model-governance/version=$_VERSION" in release


def test_model_pipeline_is_staging_then_canary_then_production_with_the_boards_approvals():
    """ml-models: staging, canary (approval), production (approval) whose traffic moves in
    verified canary steps; the targets are the ones the portal maps to its review targets."""
    resources = clouddeploy_resources(DEPLOY / "models" / "clouddeploy.yaml")
    pipeline = resources["DeliveryPipeline"]["ml-models"]
    stages = pipeline.serial_pipeline.stages
    assert [s.target_id for s in stages] == ["ml-staging", "ml-canary", "ml-production"]
    assert [list(s.profiles) for s in stages] == [["staging"], ["canary"], ["production"]]
    assert stages[0].strategy.standard.verify and stages[1].strategy.standard.verify
    canary = stages[2].strategy.canary
    assert list(canary.canary_deployment.percentages) == [10, 25, 50]
    assert canary.canary_deployment.verify is True
    networking = canary.runtime_config.kubernetes.service_networking
    assert (networking.service, networking.deployment) == ("model-server", "model-server")
    targets = resources["Target"]
    assert {name: t.require_approval for name, t in targets.items()} == {
        "ml-staging": False,
        "ml-canary": True,
        "ml-production": True,
    }
    from django.conf import settings

    assert set(settings.CLOUD_DEPLOY_TARGETS) == set(targets)


def test_portal_pipeline_parses_and_names_profiles_skaffold_has():
    """The portal's own pipeline parses as Cloud Deploy messages and every stage's
    profile renders an overlay that exists."""
    resources = clouddeploy_resources(DEPLOY / "clouddeploy.yaml")
    (pipeline,) = resources["DeliveryPipeline"].values()
    (skaffold,) = load_all(DEPLOY / "skaffold.yaml")
    profiles = {p["name"]: p for p in skaffold["profiles"]}
    for stage in pipeline.serial_pipeline.stages:
        for profile in stage.profiles:
            (path,) = profiles[profile]["manifests"]["kustomize"]["paths"]
            assert (ROOT / path / "kustomization.yaml").exists(), path


@pytest.mark.parametrize("model", MODELS)
def test_model_skaffold_profiles_render_the_models_overlays_and_verify(model):
    """Each model's skaffold file has the three profiles the pipeline names, each
    rendering that model's overlay and verifying in the namespace it deploys to."""
    (config,) = load_all(DEPLOY / "models" / "skaffold" / f"{model}.yaml")
    assert config["metadata"]["name"] == model
    assert config["verify"][0]["container"]["image"]
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) == {"staging", "canary", "production"}
    for name, profile in profiles.items():
        (path,) = profile["manifests"]["kustomize"]["paths"]
        assert path == f"deploy/k8s/overlays/{name}/models/{model}"
        assert (ROOT / path / "kustomization.yaml").exists()
        (patch,) = profile["patches"]
        namespace = f"ml-{model}-canary" if name == "canary" else f"ml-{model}"
        assert patch["value"] == [{"name": "NAMESPACE", "value": namespace}]


def test_github_workflow_matches_the_workflow_schema_and_runs_the_same_steps():
    """The GitHub Actions workflow passes the published workflow schema, federates its
    Google identity (no key file) and runs the same gate and release as Cloud Build."""
    workflow = yaml.safe_load((DEPLOY / "github" / "model-delivery.yml").read_text())
    # PyYAML reads YAML 1.1, where a bare `on` key is the boolean true; GitHub reads it
    # as the string.
    workflow["on"] = workflow.pop(True)
    schema = json.loads((VENDORED / "github-workflows.json").read_text())
    jsonschema.validate(workflow, schema)
    steps = workflow["jobs"]["deliver"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    names = [step.get("name", step.get("uses")) for step in steps]
    assert (
        names.index("Test")
        < names.index("Build and push")
        < names.index("Register the version with the portal")
    )
    assert 'deploy/ci/gate-check.sh "$MODEL" "$VERSION" staging' in runs
    assert "--delivery-pipeline=ml-models" in runs
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    assert "credentials_json" not in json.dumps(workflow)


def _gate_step(
    live_server, secret: str, model_version, tmp_path: Path
) -> subprocess.CompletedProcess:
    """Runs the gate step's script as Cloud Build would: from the workspace (the source
    checked out there), substitutions as environment variables, the secret in env."""
    build = build_of(DEPLOY / "models" / "cloudbuild.yaml")
    (step,) = [step for step in build.steps if step.id == "gate"]
    (tmp_path / "deploy").symlink_to(DEPLOY)
    return subprocess.run(
        ["bash", "-c", step.script],
        env={
            "PATH": os.environ["PATH"],
            "_PORTAL_URL": live_server.url,
            "_MODEL": model_version.model.slug,
            "_VERSION": model_version.version,
            "PORTAL_TOKEN": secret,
            "GATE_WAIT_SECONDS": "0",
            "GATE_POLL_SECONDS": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_cloudbuild_gate_step_live_passes_once_the_board_approved(
    live_server, board, token, version, tmp_path
):
    """Against the real gate: refused (exit 1) while the staging review is pending, then
    passes with the attestation in the workspace once the board approved."""
    review = gate_check_live._open(version, board)
    secret = token()

    pending = _gate_step(live_server, secret, version, tmp_path)
    assert pending.returncode == 1, pending.stderr
    assert "still pending" in pending.stderr

    review_decide(
        review=review, reviewer=board["lead"], verdict=Verdict.APPROVE, role=gate_check_live.DSL
    )
    (tmp_path / "deploy").unlink()
    approved = _gate_step(live_server, secret, version, tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert f"{version.model.slug} {version.version} may deploy to staging" in approved.stdout
    assert (tmp_path / "attestation.jwt").read_text().count(".") == 2

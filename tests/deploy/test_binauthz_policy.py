"""deploy/binauthz: the policy and attestor, read by google-cloud-binary-authorization's
own types (a misspelt field or an unknown mode fails to parse), and held to the
manifests: every serving namespace requires the attestor the portal attests as."""

import json
from pathlib import Path

import yaml
from google.cloud import binaryauthorization_v1 as binauthz

from tests.deploy.test_manifests import K8S, render

ROOT = Path(__file__).resolve().parents[2]
BINAUTHZ = ROOT / "deploy" / "binauthz"


def _parse(path: Path, message):
    return message.from_json(
        json.dumps(yaml.safe_load(path.read_text())), ignore_unknown_fields=False
    )


def test_serving_namespaces_require_the_portals_attestor_and_canaries_cloud_build():
    """Every namespace the production overlay labels as serving requires, blocking, the
    attestor named in the production portal's BINAUTHZ_ATTESTOR; canary namespaces and
    everything else require Cloud Build's attestation; no namespace is left out."""
    policy = _parse(BINAUTHZ / "policy.yaml", binauthz.Policy)
    attestor = _parse(BINAUTHZ / "attestor.yaml", binauthz.Attestor)
    docs = render(K8S / "overlays" / "production")
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"]["BINAUTHZ_ATTESTOR"] == attestor.name
    serving = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Namespace" and d["metadata"]["labels"].get("model-governance/serving")
    }
    canary = {
        d["metadata"]["name"]
        for d in render(K8S / "overlays" / "canary")
        if d["kind"] == "Namespace"
    }
    rules = policy.kubernetes_namespace_admission_rules
    assert set(rules) == serving | canary and len(serving) == 3
    block = binauthz.AdmissionRule.EnforcementMode.ENFORCED_BLOCK_AND_AUDIT_LOG
    for namespace, rule in rules.items():
        assert rule.evaluation_mode == binauthz.AdmissionRule.EvaluationMode.REQUIRE_ATTESTATION
        assert rule.enforcement_mode == block
        expected = (
            attestor.name
            if namespace in serving
            else "projects/zm-mlops-prod/attestors/built-by-cloud-build"
        )
        assert list(rule.require_attestations_by) == [expected]
    assert policy.default_admission_rule.enforcement_mode == block
    assert attestor.user_owned_grafeas_note.note_reference.endswith(
        "/notes/model-governance-production"
    )


def test_runbook_documents_breakglass():
    """The runbook says how to deploy past the policy in an emergency and how that is seen."""
    runbook = (ROOT / "deploy" / "README.md").read_text()
    assert "alpha.image-policy.k8s.io/break-glass" in runbook
    assert "policy import deploy/binauthz/policy.yaml" in runbook

"""The rollouts section of a version's evidence pack, registered from
`RolloutsConfig.ready()` (the pack lives in governance.reviews, below this app)."""

from typing import Any

from governance.models import ModelVersion
from governance.reviews.evidence import (
    EvidencePackSection,
    evidence_pack_section_register,
    jws_summary,
)
from governance.rollouts.selectors import rollouts_of_version


def rollouts_evidence(version: ModelVersion) -> dict[str, Any]:
    """Every rollout of the version: target, backend, outcome, each canary step with
    its analysis, and the gate attestation it started from (key id, SHA-256)."""
    rows = []
    for rollout in rollouts_of_version(version_id=version.pk):
        rows.append(
            {
                "rollout": rollout,
                "steps": list(rollout.step_records.all()),
                "attestation": jws_summary(rollout.attestation),
            }
        )
    return {"rollouts": rows}


def register_rollouts_evidence() -> None:
    evidence_pack_section_register(
        EvidencePackSection(
            anchor="rollouts",
            title="Rollouts",
            template="rollouts/evidence_section.html",
            build=rollouts_evidence,
            order=100,
        )
    )

"""A model version's evidence pack as PDF: what an auditor files about one version.

Printed by the portal's export jobs (kind `governance.version_evidence_pack`) through
portal.audit's pack template, so it carries the same cover, contents, page numbers,
checkpoint and verification steps as the audit report of a period. Holds the version's
lineage, its model card, every review with its automated checks and every decision
(name, role, verdict, comment, time), the gate's answers and the attestations handed
out, the sections higher apps add, and the version's whole life from the ledger.

Higher apps add sections without this module knowing them (the hook pattern of
docs/architecture.md): rollouts and monitoring call `evidence_pack_section_register`
in their `AppConfig.ready()`. A section is a template rendered with the version and
the context its builder returns; sections print in `order`.
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse

from governance.cards_schema import section_title
from governance.models import ModelVersion
from governance.permissions import may_read_registry
from governance.rendering import markdown_to_html
from governance.reviews.choices import ReviewState
from governance.reviews.models import GateState, ImageAttestation, Review
from governance.reviews.selectors import gate_state_now
from governance.selectors.cards import card_sections
from portal.accounts.choices import Role
from portal.audit.reports import evidence_pack_pdf
from portal.audit.selectors import audit_actor_names
from portal.audit.timeline import audit_timeline
from portal.exports.registry import ExportFile, ExportKind, export_kind_register

VERSION_EVIDENCE_PACK = "governance.version_evidence_pack"


@dataclass(frozen=True)
class EvidencePackSection:
    """A section a higher app adds to every version's evidence pack.

    `anchor` is its id in the document (the contents link to it), `template` is
    rendered with `{"version": version, **build(version)}`, and sections print in
    `order` (rollouts 100, monitoring 200) after the pack's own."""

    anchor: str
    title: str
    template: str
    build: Callable[[ModelVersion], dict[str, Any]]
    order: int = 100


_SECTIONS: dict[str, EvidencePackSection] = {}


def evidence_pack_section_register(section: EvidencePackSection) -> None:
    """Add (or replace, by anchor) a section of every version's evidence pack. Call from
    the registering app's `AppConfig.ready()`."""
    _SECTIONS[section.anchor] = section


def evidence_pack_sections() -> list[EvidencePackSection]:
    """The registered sections, in print order."""
    return sorted(_SECTIONS.values(), key=lambda section: (section.order, section.anchor))


def _rendered_sections(version: ModelVersion) -> list[dict[str, Any]]:
    rendered = []
    for section in evidence_pack_sections():
        html = render_to_string(section.template, {"version": version, **section.build(version)})
        # render_to_string returns safe HTML: the section's template escaped its values.
        rendered.append({"anchor": section.anchor, "title": section.title, "html": html})
    return rendered


def jws_summary(statement: str) -> dict[str, str]:
    """What a pack prints of a signed statement (compact JWS): the key id from its
    header and the SHA-256 of the whole statement, enough to match a copy."""
    if not statement:
        return {"kid": "", "sha256": ""}
    kid = ""
    try:
        header = statement.split(".", 1)[0]
        kid = str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        kid = ""
    return {"kid": kid, "sha256": hashlib.sha256(statement.encode()).hexdigest()}


# The gate's answer where the clock or the version moved it past the stored review
# state (an approval lapsed before the expiry task ran; the version discarded).
_GATE_LABELS = {
    "expired": ReviewState.EXPIRED.label,
    "discarded": "Refused: version discarded",
}


def _gate_rows(version: ModelVersion) -> list[dict[str, Any]]:
    """The gate's stored answer per target, as the gate would give it now."""
    rows = []
    for state in GateState.objects.filter(version=version).order_by("target"):
        rows.append(
            {
                "target": state.get_target_display(),
                "review": state.review_id,
                "answer": _GATE_LABELS.get(
                    gate_state_now(
                        review_state=state.review_state,
                        expires_at=state.expires_at,
                        version_state=version.state,
                    ),
                    state.get_review_state_display(),
                ),
                "expires_at": state.expires_at,
                "approvals": ", ".join(
                    _role_label(str(approval.get("role", ""))) for approval in state.approvals
                ),
                "missing": ", ".join(_role_label(str(role)) for role in state.missing_roles),
                "failed_checks": ", ".join(str(check) for check in state.failed_checks),
                "refreshed_at": state.refreshed_at,
                "attestation": jws_summary(state.attestation),
                "attestation_expires_at": state.attestation_expires_at,
            }
        )
    return rows


def _version(params: dict[str, Any]) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(pk=params["version_id"])


def _role_label(role: str) -> str:
    try:
        return str(Role(role).label)
    except ValueError:
        return role


def version_evidence_pack_pdf(
    *, version: ModelVersion, progress: Callable[[int, str], None]
) -> bytes:
    """The pack as PDF bytes. Side effects: may sign an audit checkpoint."""
    card = getattr(version, "card", None)
    sections = []
    if card is not None:
        for section in card_sections(card=card):
            sections.append(
                {
                    "title": section_title(section.key),
                    "html": markdown_to_html(section.content),
                    "empty": not section.content.strip(),
                }
            )
    reviews = list(
        Review.objects.filter(version=version)
        .prefetch_related("decisions__reviewer")
        .order_by("opened_at")
    )
    for review in reviews:
        review.decision_rows = [
            {
                "who": decision.reviewer.full_name or decision.reviewer.email,
                "role": _role_label(decision.role),
                "verdict": decision.get_verdict_display(),
                "comment": decision.comment,
                "at": decision.decided_at,
                "standing": decision.active,
            }
            for decision in review.decisions.all()
        ]
    events = list(
        audit_timeline(
            object_type="model_version", object_id=f"{version.model.slug}@{version.version}"
        )
    )
    names = audit_actor_names(events)
    life = [
        {
            "event": event,
            "actor": names.get((event.actor_type, event.actor_id)) or event.actor_display,
        }
        for event in events
    ]
    gates = _gate_rows(version)
    image_attestations = list(
        ImageAttestation.objects.filter(version=version).order_by("created_at", "pk")
    )
    extra_sections = _rendered_sections(version)
    progress(20, f"{len(reviews)} reviews and {len(events)} events gathered")
    return evidence_pack_pdf(
        template="governance/evidence_pack_print.html",
        title=f"Evidence pack {version.model.slug} {version.version}",
        context={
            "version": version,
            "sections": sections,
            "reviews": reviews,
            "gates": gates,
            "image_attestations": image_attestations,
            "extra_sections": extra_sections,
            "life": life,
        },
        progress=progress,
    )


def version_evidence_pack_produce(
    params: dict[str, Any], progress: Callable[[int, str], None]
) -> ExportFile:
    """The export job's maker (params: {"version_id": ...})."""
    version = _version(params)
    return ExportFile(
        content=version_evidence_pack_pdf(version=version, progress=progress),
        filename=f"evidence-{version.model.slug}-{version.version}.pdf",
        content_type="application/pdf",
    )


def _readable(user: Any, params: dict[str, Any]) -> bool:
    # The pack names the reviewers and the ledger's events: auditors and portal admins.
    return bool(
        user.is_authenticated
        and user.has_role(Role.AUDITOR, Role.PORTAL_ADMIN)
        and may_read_registry(user)
    )


def _source_url(params: dict[str, Any]) -> str:
    version = ModelVersion.objects.select_related("model").filter(pk=params["version_id"]).first()
    if version is None:
        return ""
    return reverse(
        "governance:version_detail",
        kwargs={"model": version.model.slug, "version": version.version},
    )


def register_evidence_pack() -> None:
    export_kind_register(
        ExportKind(
            name=VERSION_EVIDENCE_PACK,
            label="Evidence pack of a model version (PDF)",
            produce=version_evidence_pack_produce,
            may_read=_readable,
            source_url=_source_url,
        )
    )

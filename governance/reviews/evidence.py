"""A model version's evidence pack as PDF: what an auditor files about one version.

Printed by the portal's export jobs (kind `governance.version_evidence_pack`) through
portal.audit's pack template, so it carries the same cover, contents, page numbers,
checkpoint and verification steps as the audit report of a period. Holds the version's
lineage, its model card, every review with its automated checks and every decision
(name, role, verdict, comment, time), and the version's whole life from the ledger.
"""

from collections.abc import Callable
from typing import Any

from django.urls import reverse

from governance.cards_schema import section_title
from governance.models import ModelVersion
from governance.permissions import may_read_registry
from governance.rendering import markdown_to_html
from governance.reviews.models import Review
from governance.selectors.cards import card_sections
from portal.accounts.choices import Role
from portal.audit.reports import evidence_pack_pdf
from portal.audit.selectors import audit_actor_names
from portal.audit.timeline import audit_timeline
from portal.exports.registry import ExportFile, ExportKind, export_kind_register

VERSION_EVIDENCE_PACK = "governance.version_evidence_pack"


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
    progress(20, f"{len(reviews)} reviews and {len(events)} events gathered")
    return evidence_pack_pdf(
        template="governance/evidence_pack_print.html",
        title=f"Evidence pack {version.model.slug} {version.version}",
        context={"version": version, "sections": sections, "reviews": reviews, "life": life},
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

"""Writes to model cards: creation from the previous version's card, section edits and
confirmations, the performance section kept in step with the version's metrics.

Every save writes a CardRevision (numbered per card), an audit event, and tells the
review board that the version's evidence changed, all in one transaction.
"""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from governance.cards_schema import SECTION_BY_KEY, SECTIONS, section_data_clean
from governance.choices import CardSectionKey
from governance.models import (
    CARD_SECTION_MAX_CHARS,
    CardRevision,
    CardSection,
    ModelCard,
    ModelVersion,
)
from governance.permissions import may_edit_card
from governance.services.evidence import evidence_changed
from portal.audit.actors import Actor
from portal.audit.services import audit_record

AUDIT_OBJECT_TYPE = ModelVersion.AUDIT_OBJECT_TYPE


def performance_data(version: ModelVersion) -> dict:
    data: dict[str, Any] = {}
    if version.metrics:
        data["metrics"] = version.metrics
    if version.metric_slices:
        data["slices"] = version.metric_slices
    return data


def _previous_version(version: ModelVersion) -> ModelVersion | None:
    """The version just below this one by semantic version (a hotfix 1.1.1 registered
    after 1.2.0 starts from 1.1.0, not from the latest registration)."""
    major, minor, patch = version.version_major, version.version_minor, version.version_patch
    lower = (
        Q(version_major__lt=major)
        | Q(version_major=major, version_minor__lt=minor)
        | Q(version_major=major, version_minor=minor, version_patch__lt=patch)
        # a pre-release of the same number, registered earlier
        | Q(
            version_major=major,
            version_minor=minor,
            version_patch=patch,
            registered_at__lt=version.registered_at,
        )
    )
    return (
        ModelVersion.objects.filter(lower, model_id=version.model_id)
        .exclude(pk=version.pk)
        .filter(card__isnull=False)
        .order_by("-version_major", "-version_minor", "-version_patch", "-registered_at")
        .first()
    )


def card_create(*, version: ModelVersion, actor: Actor) -> ModelCard:
    """Create the card of a newly registered version, inside the caller's transaction.

    Sections start from the previous version's card, marked `inherited` until someone
    confirms them for this version; the performance section is filled from the metrics.
    Side effects: one CardRevision per non-empty section. The caller audits the
    registration, which covers the card's creation.
    """
    previous = _previous_version(version)
    previous_card = previous.card if previous else None
    old_sections = (
        {s.key: s for s in previous_card.sections.all()} if previous_card is not None else {}
    )
    now = timezone.now()
    card = ModelCard.objects.create(
        version=version, inherited_from=previous_card, created_at=now, updated_at=now
    )
    sections, revisions = [], []
    label = actor.ref
    for spec in SECTIONS:
        content, data, inherited = "", {}, False
        comment = ""
        if spec.key == CardSectionKey.PERFORMANCE:
            data = performance_data(version)
            comment = "Filled from the registered metrics."
        elif spec.key in old_sections and not old_sections[spec.key].is_empty:
            old = old_sections[spec.key]
            content, data, inherited = old.content, dict(old.data), True
            if spec.key == CardSectionKey.TRAINING_DATA and version.data_version:
                data["data_version"] = version.data_version  # lineage says which data
            comment = f"Inherited from version {previous.version}; to be confirmed."  # type: ignore[union-attr]
        sections.append(
            CardSection(
                card=card,
                key=spec.key,
                content=content,
                data=data,
                inherited=inherited,
                updated_at=now,
            )
        )
        if content or data:
            revisions.append(
                CardRevision(
                    card=card,
                    number=len(revisions) + 1,
                    section_key=spec.key,
                    content=content,
                    data=data,
                    inherited=inherited,
                    actor=label,
                    comment=comment,
                    created_at=now,
                )
            )
    CardSection.objects.bulk_create(sections)
    CardRevision.objects.bulk_create(revisions)
    return card


def _next_revision_number(card: ModelCard) -> int:
    last = card.revisions.aggregate(last=Max("number"))["last"]
    return (last or 0) + 1


def _section_save(
    *,
    card: ModelCard,
    key: str,
    content: str,
    data: dict | None,
    author: Any,
    actor: Actor,
    comment: str,
    action: str,
    client_ip: str | None,
    require_change: bool = True,
) -> CardSection:
    if key not in CardSectionKey.values:
        raise ValidationError({"key": f"No card section {key!r}."})
    if len(content or "") > CARD_SECTION_MAX_CHARS:
        raise ValidationError(
            {"content": f"A section's text is at most {CARD_SECTION_MAX_CHARS:,} characters."}
        )
    with transaction.atomic():
        # Lock the card: revision numbers are per card, and two editors may save at once.
        # FOR UPDATE without `of` also locks the joined version (and model) row, before
        # the audit chain head: the order the review services keep, which the changed
        # evidence below needs (tests/governance/reviews/test_gate_lock_order.py).
        card = (
            ModelCard.objects.select_for_update().select_related("version__model").get(pk=card.pk)
        )
        section, _ = CardSection.objects.get_or_create(card=card, key=key)
        if SECTION_BY_KEY[key].system_data:
            cleaned = section.data  # the metrics are changed through the registry, not here
        else:
            cleaned = section_data_clean(key=key, data=section.data if data is None else data)
        content = (content or "").replace("\r\n", "\n").strip()
        unchanged = section.content == content and section.data == cleaned
        if unchanged and not section.inherited and require_change:
            return section
        was_inherited = section.inherited
        now = timezone.now()
        section.content, section.data, section.inherited = content, cleaned, False
        section.updated_by = author
        section.updated_at = now
        section.save()
        number = _next_revision_number(card)
        CardRevision.objects.create(
            card=card,
            number=number,
            section_key=key,
            content=content,
            data=cleaned,
            inherited=False,
            author=author,
            actor=actor.ref,
            comment=(comment or "").strip()[:300],
            created_at=now,
        )
        card.updated_at = now
        card.save(update_fields=["updated_at"])
        version = card.version
        audit_record(
            action=action,
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=version.audit_id,
            payload={
                "section": key,
                "revision": number,
                "was_inherited": was_inherited,
                "content_changed": not unchanged,
            },
            client_ip=client_ip,
        )
        evidence_changed(version=version, reason=f"card section {key}: {action}", actor=actor)
    return section


def card_section_update(
    *,
    card: ModelCard,
    key: str,
    content: str,
    data: dict | None,
    actor_user: Any,
    comment: str = "",
    client_ip: str | None = None,
) -> CardSection:
    """A person saves one section (Markdown text and, for structured sections, data).

    Saving also confirms an inherited section. Refuses people who may not edit this
    model's cards (PermissionDenied) and invalid data (ValidationError naming the field).
    Side effects: CardRevision, audit `card.section_updated`, `evidence_changed`. A save
    that changes nothing in a confirmed section writes nothing.
    """
    if not may_edit_card(actor_user, card.version.model):
        raise PermissionDenied("Only the model's owners and data science leads edit its card.")
    return _section_save(
        card=card,
        key=key,
        content=content,
        data=data,
        author=actor_user,
        actor=actor_user.audit_actor(),
        comment=comment,
        action="card.section_updated",
        client_ip=client_ip,
    )


def card_section_confirm(
    *,
    card: ModelCard,
    key: str,
    actor_user: Any,
    comment: str = "",
    client_ip: str | None = None,
) -> CardSection:
    """A person confirms that an inherited section holds for this version unchanged.

    Side effects: CardRevision, audit `card.section_confirmed`, `evidence_changed`.
    """
    if not may_edit_card(actor_user, card.version.model):
        raise PermissionDenied("Only the model's owners and data science leads edit its card.")
    section = CardSection.objects.filter(card=card, key=key).first()
    if section is None or not section.inherited:
        raise ValidationError({"key": "Only an inherited section needs confirming."})
    return _section_save(
        card=card,
        key=key,
        content=section.content,
        data=section.data,
        author=actor_user,
        actor=actor_user.audit_actor(),
        comment=comment or "Confirmed for this version.",
        action="card.section_confirmed",
        client_ip=client_ip,
        require_change=False,
    )


def card_section_write(
    *,
    card: ModelCard,
    key: str,
    content: str,
    data: dict | None,
    actor: Actor,
    comment: str = "",
) -> CardSection:
    """A machine (the pipeline, the demo loader) writes a section; no person to check.

    Side effects: as card_section_update, with audit `card.section_updated`.
    """
    return _section_save(
        card=card,
        key=key,
        content=content,
        data=data,
        author=None,
        actor=actor,
        comment=comment,
        action="card.section_updated",
        client_ip=None,
    )


def card_performance_refresh(*, version: ModelVersion, actor: Actor) -> CardSection | None:
    """Copy the version's metrics into its card's performance section, inside the
    caller's transaction. Side effects: a CardRevision when the data changed (the
    caller audits the metrics change and announces the evidence change)."""
    card = ModelCard.objects.select_for_update().filter(version=version).first()
    if card is None:
        return None
    section, _ = CardSection.objects.get_or_create(card=card, key=CardSectionKey.PERFORMANCE)
    data = performance_data(version)
    if section.data == data:
        return section
    now = timezone.now()
    section.data, section.updated_at, section.inherited = data, now, False
    section.save(update_fields=["data", "updated_at", "inherited"])
    CardRevision.objects.create(
        card=card,
        number=_next_revision_number(card),
        section_key=CardSectionKey.PERFORMANCE,
        content=section.content,
        data=data,
        actor=actor.ref,
        comment="Metrics replaced.",
        created_at=now,
    )
    card.updated_at = now
    card.save(update_fields=["updated_at"])
    return section

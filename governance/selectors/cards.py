"""Reads of model cards: sections in order, completeness, diffs between versions and
between revisions."""

import difflib
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from governance.cards_schema import (
    REQUIRED_SECTIONS,
    SECTION_BY_KEY,
    SECTIONS,
    section_title,
)
from governance.models import CardRevision, CardSection, ModelCard
from portal.ui.numbers import number_text


@dataclass(frozen=True)
class SectionState:
    """A section's content at one point: now, or as of a revision."""

    key: str
    content: str = ""
    data: dict = field(default_factory=dict)
    inherited: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.content.strip() and not self.data


def card_sections(*, card: ModelCard) -> list[CardSection]:
    """All sections in the card's order; a missing one comes back empty (unsaved).
    Uses prefetched sections when the caller prefetched them."""
    found = {section.key: section for section in card.sections.all()}
    return [found.get(spec.key) or CardSection(card=card, key=spec.key) for spec in SECTIONS]


def card_missing_sections(*, card: ModelCard) -> list[str]:
    """The required sections still empty, or inherited and not yet confirmed for this
    version, in the card's order. The review board gates on this list being empty."""
    found = {section.key: section for section in card.sections.all()}
    return [
        key
        for key in REQUIRED_SECTIONS
        if key not in found or found[key].is_empty or found[key].inherited
    ]


def card_revisions(*, card: ModelCard) -> QuerySet[CardRevision]:
    return card.revisions.select_related("author").order_by("-number")


def card_state(*, card: ModelCard) -> dict[str, SectionState]:
    return {
        s.key: SectionState(key=s.key, content=s.content, data=s.data, inherited=s.inherited)
        for s in card.sections.all()
    }


def card_state_at_revision(*, card: ModelCard, number: int) -> dict[str, SectionState]:
    """Each section as the latest revision numbered `number` or lower left it."""
    state: dict[str, SectionState] = {}
    for revision in card.revisions.filter(number__lte=number).order_by("number"):
        state[revision.section_key] = SectionState(
            key=revision.section_key,
            content=revision.content,
            data=revision.data,
            inherited=revision.inherited,
        )
    return state


# Enough digits that a diff still shows a changed figure, few enough to read.
DATA_DIGITS = 6


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, int | float):
        return number_text(value, DATA_DIGITS)
    if isinstance(value, list):
        return ", ".join(_value_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_value_text(v)}" for k, v in value.items())
    return str(value)


def data_lines(data: dict) -> list[str]:
    """Structured data as readable lines, one fact or one row per line, for diffs and
    the Markdown export."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{key}:")
            lines.extend(f"- {_value_text(row)}" for row in value)
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            lines.append(f"{key}:")
            lines.extend(f"- {name}: {_value_text(row)}" for name, row in value.items())
        else:
            lines.append(f"{key}: {_value_text(value)}")
    return lines


def section_lines(state: SectionState | None) -> list[str]:
    if state is None:
        return []
    lines = state.content.splitlines()
    if state.data:
        if lines:
            lines.append("")
        lines.extend(data_lines(state.data))
    return lines


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "remove", "context", "hunk"
    text: str


@dataclass(frozen=True)
class SectionDiff:
    key: str
    title: str
    status: str  # "unchanged", "changed", "added", "removed", "empty"
    lines: list[DiffLine]
    old_inherited: bool = False
    new_inherited: bool = False


def _diff_lines(old: list[str], new: list[str]) -> list[DiffLine]:
    result = []
    for line in difflib.unified_diff(old, new, lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            result.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            result.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            result.append(DiffLine("remove", line[1:]))
        else:
            result.append(DiffLine("context", line[1:]))
    return result


def card_states_diff(
    *, old: dict[str, SectionState], new: dict[str, SectionState]
) -> list[SectionDiff]:
    """Section by section, in the card's order."""
    diffs = []
    for spec in SECTIONS:
        before, after = old.get(spec.key), new.get(spec.key)
        old_lines, new_lines = section_lines(before), section_lines(after)
        if not old_lines and not new_lines:
            status = "empty"
        elif old_lines == new_lines:
            status = "unchanged"
        elif not old_lines:
            status = "added"
        elif not new_lines:
            status = "removed"
        else:
            status = "changed"
        diffs.append(
            SectionDiff(
                key=spec.key,
                title=section_title(spec.key),
                status=status,
                lines=_diff_lines(old_lines, new_lines) if status != "unchanged" else [],
                old_inherited=bool(before and before.inherited),
                new_inherited=bool(after and after.inherited),
            )
        )
    return diffs


def card_diff(*, old_card: ModelCard, new_card: ModelCard) -> list[SectionDiff]:
    """Two versions' cards, section by section."""
    return card_states_diff(old=card_state(card=old_card), new=card_state(card=new_card))


def card_revisions_diff(*, card: ModelCard, old_number: int, new_number: int) -> list[SectionDiff]:
    """The card as revision `old_number` left it against `new_number`."""
    return card_states_diff(
        old=card_state_at_revision(card=card, number=old_number),
        new=card_state_at_revision(card=card, number=new_number),
    )


def section_guidance(key: str) -> str:
    return SECTION_BY_KEY[key].guidance

"""What GDPR Art. 15(1) says every access answer must tell the person, and the plain
language explanation of the profiling, drawn from the model cards of the versions
that profile customers (Art. 15(1)(h), read by the Court of Justice in C-203/22 as the
procedure and principles actually applied)."""

from dataclasses import dataclass, field

from governance.choices import CardSectionKey, ModelKind, Target
from governance.selectors.cards import card_sections
from governance.selectors.registry import models_overview

# The privacy notice's version: consent is given and withdrawn against it (Art. 7(1)).
# Change it whenever the notice's text on purposes or profiling changes.
PRIVACY_NOTICE_VERSION = "2026-11"

ART15_INFORMATION = {
    "purposes": [
        "Selling and delivering your orders, and customer service (contract, Art. 6(1)(b)).",
        "Grouping customers by purchasing behaviour to plan ranges and offers "
        "(profiling for segmentation; your consent, Art. 6(1)(a)).",
        "Recommending products from your purchases (personalised recommendations; consent).",
        "Marketing e-mails (consent).",
    ],
    "recipients": [
        "Google Cloud (Google Ireland Limited), which hosts our data and models as our "
        "processor under Art. 28.",
        "Delivery partners, for the address of an order only.",
    ],
    "retention": "Purchase records: six years after the purchase (tax law). Customer "
    "account and CRM notes: two years after your last purchase. Training snapshots: "
    "until the model versions trained on them are retired.",
    "source": "You gave us your details when you signed up; purchases are recorded when "
    "you buy; CRM notes are written by our customer service.",
    "rights": "You may ask for rectification (Art. 16), erasure (Art. 17), restriction "
    "(Art. 18), portability (Art. 20), and object to profiling (Art. 21) at any time, "
    "withdraw consent without affecting what was done before (Art. 7(3)), and complain "
    "to a supervisory authority (in the UK the Information Commissioner's Office).",
    "automated_decisions": "No decision with legal or similarly significant effects is "
    "made about you by automated means alone (Art. 22); segmentation and recommendations "
    "shape the offers and products you see.",
}

PROFILING_KINDS = (ModelKind.SEGMENTATION, ModelKind.RECOMMENDATION)
EXPLAINING_SECTIONS = (
    CardSectionKey.MODEL_DETAILS,
    CardSectionKey.INTENDED_USE,
    CardSectionKey.TRAINING_DATA,
    CardSectionKey.LIMITATIONS,
)


@dataclass(frozen=True)
class ProfilingExplanation:
    model: str
    kind: str
    version: str
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, text)


def profiling_explanations() -> list[ProfilingExplanation]:
    """The profiling models as production serves them (else their newest version),
    explained by their cards' own words."""
    explanations = []
    for kind in PROFILING_KINDS:
        for model in models_overview(kind=kind):
            version = model.targets.get(Target.PRODUCTION) or model.latest
            if version is None:
                continue
            card = getattr(version, "card", None)
            texts = []
            if card is not None:
                by_key = {section.key: section for section in card_sections(card=card)}
                for key in EXPLAINING_SECTIONS:
                    section = by_key.get(key)
                    if section is not None and section.content.strip():
                        texts.append((CardSectionKey(key).label, section.content.strip()))
            explanations.append(
                ProfilingExplanation(
                    model=model.name,
                    kind=model.get_kind_display(),
                    version=version.version,
                    sections=texts,
                )
            )
    return explanations


# --- Art. 15(1)(h) for one person ------------------------------------------------------


@dataclass(frozen=True)
class PersonProfiling:
    """How one profiling model treats this person now: the outcome the model server
    last gave them (from the prediction log), what it means, and the logic applied."""

    model: str
    kind: str
    version: str  # the version that profiles customers now (production)
    outcome: str  # "Segment 2", "Recommended: P001, P002", or what is known instead
    outcome_at: str  # the ISO time of that prediction ("" if none)
    meaning: list[tuple[str, str]] = field(default_factory=list)  # the segment's profile
    basis: str = ""  # what the outcome is based on, in plain words
    sections: list[tuple[str, str]] = field(default_factory=list)  # the card's logic


def _segment_profile(card_texts: list[str], segment: int) -> list[tuple[str, str]]:
    """The row of the card's segment profile table (Markdown, first column the
    segment number) for `segment`, as (column, value) pairs; [] if the card has none."""
    for text in card_texts:
        header: list[str] = []
        for line in text.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not line.lstrip().startswith("|") or len(cells) < 2:
                continue
            if cells[0].lower() == "segment":
                header = cells
            elif header and cells[0] == str(segment) and len(cells) == len(header):
                return list(zip(header[1:], cells[1:], strict=True))
    return []


def _newest(lines: list[dict], model: str, version: str) -> tuple[dict | None, bool]:
    """The person's newest prediction line of `model`, preferring `version`'s."""
    mine = sorted(
        (line for line in lines if line.get("model") == model),
        key=lambda line: str(line.get("ts", "")),
    )
    of_version = [line for line in mine if line.get("version") == version]
    if of_version:
        return of_version[-1], True
    return (mine[-1], False) if mine else (None, False)


def person_profiling(
    *, predictions: list[dict], purchases: int | None, suppressed: set[str]
) -> list[PersonProfiling]:
    """Meaningful information about the logic involved (Art. 15(1)(h), C-203/22), for
    one person: per profiling model, the version serving production, the segment or
    recommendations it last gave them, what the segment means (the card's profile
    table) and what the outcome is based on.

    `predictions`: the person's prediction log lines; `purchases`: how many purchase
    rows of theirs the lake holds (None if unknown); `suppressed`: the purposes they
    are left out of (`profiling`, `personalisation`), from the suppression list.
    """
    found = []
    for kind in PROFILING_KINDS:
        purpose = "profiling" if kind == ModelKind.SEGMENTATION else "personalisation"
        for model in models_overview(kind=kind):
            version = model.targets.get(Target.PRODUCTION) or model.latest
            if version is None:
                continue
            card = getattr(version, "card", None)
            sections = card_sections(card=card) if card is not None else []
            texts = [(CardSectionKey(s.key).label, s.content.strip()) for s in sections]
            logic = [(t, c) for t, c in texts if c and t in _EXPLAINING_LABELS]
            line, current = _newest(predictions, model.slug, version.version)
            answer = (line or {}).get("prediction") or {}
            meaning: list[tuple[str, str]] = []
            if purpose in suppressed:
                outcome = (
                    "Not profiled: you objected, asked for restriction or erasure, or "
                    "withdrew consent, so the model server gives you the default answer "
                    "for everyone and the next training leaves your data out."
                )
            elif line is None:
                outcome = "The model server has not scored you yet."
            elif kind == ModelKind.SEGMENTATION and "segment" in answer:
                outcome = f"Segment {answer['segment']}"
                meaning = _segment_profile([c for _, c in texts], int(answer["segment"]))
            elif "items" in answer:
                outcome = "Recommended: " + ", ".join(map(str, answer["items"][:10]))
            else:
                outcome = "See the prediction log in this package."
            if line is not None and not current and purpose not in suppressed:
                outcome += f" (from version {line.get('version')}, before the current one)"
            bought = (
                f"the {purchases} purchase record(s) of yours in our data"
                if purchases is not None
                else "your purchase records"
            )
            basis = (
                f"Your segment comes from {bought}: how recently and how often you buy, "
                "how much you spend, your share of promotions, online and weekend "
                "shopping and your mix of departments, compared with every other "
                "customer's."
                if kind == ModelKind.SEGMENTATION
                else f"Recommendations come from {bought}: the products you bought and "
                "how long ago, compared with what customers who bought the same "
                "products bought next; nothing else about you is used."
            )
            found.append(
                PersonProfiling(
                    model=model.name,
                    kind=model.get_kind_display(),
                    version=version.version,
                    outcome=outcome,
                    outcome_at=str((line or {}).get("ts", "")),
                    meaning=meaning,
                    basis=basis,
                    sections=logic,
                )
            )
    return found


_EXPLAINING_LABELS = {CardSectionKey(key).label for key in EXPLAINING_SECTIONS}

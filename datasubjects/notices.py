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

"""Card exports against what their readers accept: the PDF's text layer in every script
the client writes, the Model Card Toolkit's JSON schema, the Hugging Face Hub's card
metadata."""

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import eval_results_to_model_index
from jsonschema import Draft7Validator
from pypdf import PdfReader

from governance.choices import CardSectionKey
from governance.selectors.card_exports import (
    card_export_governance,
    card_export_json,
    card_export_markdown,
    card_export_pdf,
)
from governance.services.cards import card_section_update
from portal.accounts.choices import Role
from tests.governance.test_cards import fill_card

pytestmark = pytest.mark.django_db

JAPANESE = "需要予測は店舗ごとの売上に基づきます"
EMOJI = "📈"


@pytest.fixture()
def lead(make_user):
    return make_user(Role.DATA_SCIENCE_LEAD)


def _pdf_fonts(reader: PdfReader) -> set[str]:
    """Base names of the fonts that carry an embedded font file."""
    names = set()
    for page in reader.pages:
        fonts = page["/Resources"].get("/Font", {})
        for ref in fonts.values():
            font = ref.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                descriptor = descendant.get_object().get("/FontDescriptor")
                if descriptor is None:
                    continue
                descriptor = descriptor.get_object()
                if any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                    names.add(str(descriptor["/FontName"]).split("+", 1)[-1])
    return names


def test_export_pdf_keeps_japanese_and_emoji_in_the_text_layer(register, lead):
    """A section written in Japanese with an emoji comes out of the PDF as the same
    characters, set in the Noto CJK and emoji fonts the print stylesheet names (not as
    empty boxes from a font that lacks them)."""
    version = register("1.0.0")
    fill_card(version.card, lead)
    card_section_update(
        card=version.card,
        key=CardSectionKey.LIMITATIONS,
        content=f"{JAPANESE} {EMOJI}",
        data=None,
        actor_user=lead,
    )
    reader = PdfReader(io.BytesIO(card_export_pdf(card=version.card)))
    text = "".join(page.extract_text() for page in reader.pages)
    assert JAPANESE in text
    assert EMOJI in text
    fonts = _pdf_fonts(reader)
    assert "Noto-Sans-CJK-JP" in fonts
    assert "Noto-Color-Emoji" in fonts
    # Every glyph comes from the stack the stylesheet names, none from whatever
    # fontconfig happens to fall back to on the machine that renders it.
    strays = {n for n in fonts if not n.startswith(("Noto-Sans", "Noto-Color-Emoji"))}
    assert strays == set()


# --- JSON: the Model Card Toolkit's own schema ------------------------------------------

MCT_SCHEMA = json.loads(
    (Path(__file__).parent / "schemas/model_card_toolkit/model_card.v0.0.2.schema.json").read_text()
)


def _closed(schema: Any) -> Any:
    """The schema with every object closed (`additionalProperties: false`), as the
    toolkit's own loader is: a field v0.0.2 does not define is an error at any depth."""
    if isinstance(schema, dict):
        closed = {k: _closed(v) for k, v in schema.items()}
        if "properties" in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _schema_errors(schema: dict, document: dict) -> list[str]:
    validator = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_export_json_validates_against_model_card_toolkit_schema(register, lead):
    """The JSON export is a Model Card Toolkit v0.0.2 document: the schema's top level
    is closed (no `governance` key), links are URIs and dates are dates; no field
    outside v0.0.2 at any depth."""
    version = register(
        "1.0.0",
        model="customer-segmentation",
        metrics={"silhouette": 0.41, "n_clusters": 3, "cluster_sizes": [120, 340, 95]},
        metric_slices={"region": {"north": {"silhouette": 0.39}}},
    )
    fill_card(version.card, lead)
    card_section_update(
        card=version.card,
        key=CardSectionKey.MODEL_DETAILS,
        content="K-means on purchasing behaviour.",
        data={
            "owners": ["ML team"],
            "licence": "Proprietary, Zero Margin Limited",
            "references": ["https://wiki.zeromargin.example/ml/seg", "Internal memo 12"],
        },
        actor_user=lead,
    )
    data = card_export_json(card=version.card)
    assert _schema_errors(MCT_SCHEMA, data) == []
    assert _schema_errors(_closed(MCT_SCHEMA), data) == []
    metrics = data["quantitative_analysis"]["performance_metrics"]
    assert {"type": "cluster_sizes", "value": "[120, 340, 95]", "slice": ""} in metrics
    assert {"type": "silhouette", "value": "0.39", "slice": "region=north"} in metrics
    assert data["model_details"]["references"] == [
        {"reference": "https://wiki.zeromargin.example/ml/seg"}
    ]
    assert data["model_details"]["citations"] == [{"citation": "Internal memo 12"}]


def test_export_governance_json_carries_what_the_toolkit_has_no_field_for(register, lead):
    """Lineage, data schema, fairness rows, risk tier and completeness leave the toolkit
    document for a companion governance document naming the card it belongs to."""
    version = register("1.0.0")
    fill_card(version.card, lead)
    data = card_export_governance(card=version.card)
    assert data["model_card"] == {
        "schema_version": "0.0.2",
        "name": "demand-forecasting",
        "version": "1.0.0",
    }
    assert data["lineage"]["code_version"] == version.code_version
    assert data["data_schema"][1]["name"] == "customer_pid"
    assert data["fairness_assessment"]["assessments"][0]["metric"] == "MAPE"
    assert data["missing_sections"] == []
    assert data["metric_slices"] == {"region": {"north": {"mae": 360.0}, "south": {"mae": 340.0}}}


# --- Markdown: the Hugging Face Hub's card metadata --------------------------------------

HUB_LICENCE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


def test_export_markdown_front_matter_is_what_the_hub_accepts(register, lead, tmp_path):
    """huggingface_hub reads the front matter (metadata_load, ModelCard) without error;
    a custom licence is `other` with a slug name and a link, and every model-index
    metric value is a number (a list metric is one entry per element)."""
    version = register(
        "1.0.0",
        model="customer-segmentation",
        metrics={"silhouette": 0.41, "n_clusters": 3, "cluster_sizes": [120, 340, 95]},
    )
    fill_card(version.card, lead)
    card_section_update(
        card=version.card,
        key=CardSectionKey.MODEL_DETAILS,
        content="K-means.",
        data={"owners": ["ML team"], "licence": "Proprietary, Zero Margin Limited"},
        actor_user=lead,
    )
    text = card_export_markdown(card=version.card)
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    metadata = metadata_load(readme)
    assert metadata["license"] == "other"
    assert HUB_LICENCE_NAME.match(metadata["license_name"])
    assert metadata["license_name"] == "proprietary-zero-margin-limited"
    assert metadata["license_link"] == "LICENSE"

    card = ModelCard(text, ignore_metadata_errors=False)
    assert card.data.model_name == "customer-segmentation-1.0.0"
    results = card.data.eval_results
    assert all(
        isinstance(r.metric_value, int | float) and not isinstance(r.metric_value, bool)
        for r in results
    ), [r.metric_value for r in results]
    values = {r.metric_type: r.metric_value for r in results}
    assert values["cluster_sizes[2]"] == 95
    assert values["silhouette"] == 0.41
    # And the same metadata written back by the library is the same model-index.
    assert eval_results_to_model_index(card.data.model_name, results) == metadata["model-index"]


def test_export_markdown_keeps_a_hub_licence_id(register, lead):
    """A licence the Hub knows (apache-2.0) stays as the `license` id, with no name/link."""
    version = register("1.0.0")
    fill_card(version.card, lead)
    card_section_update(
        card=version.card,
        key=CardSectionKey.MODEL_DETAILS,
        content="Trees.",
        data={"owners": ["ML team"], "licence": "Apache-2.0"},
        actor_user=lead,
    )
    front = ModelCard(card_export_markdown(card=version.card)).data.to_dict()
    assert front["license"] == "apache-2.0"
    assert "license_name" not in front and "license_link" not in front

"""Card exports against what their readers accept: the PDF's text layer in every script
the client writes, the Model Card Toolkit's JSON schema, the Hugging Face Hub's card
metadata."""

import io

import pytest
from pypdf import PdfReader

from governance.choices import CardSectionKey
from governance.selectors.card_exports import card_export_pdf
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

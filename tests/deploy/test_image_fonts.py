"""The fonts the card print stylesheet names are installed wherever PDFs are made: the
container image and CI's fresh machine."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTO = ("fonts-noto-core", "fonts-noto-cjk", "fonts-noto-color-emoji")


def test_image_and_ci_install_the_noto_fonts_the_print_stylesheet_names():
    """The Dockerfile and .ci/run install the three Noto packages, and the stylesheet's
    font stack names the families they bring (without them a Japanese card or an emoji
    prints as empty boxes)."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for package in NOTO:
        assert re.search(rf"apt-get install[^\n]*(\\\n[^\n]*)*\b{package}\b", dockerfile), package
        assert re.search(rf"\b{package}\b", ci), package
    css = (ROOT / "static" / "css" / "card-print.css").read_text()
    stack = re.search(r"html \{ font-family: ([^;]+);", css).group(1)
    assert stack.split(", ")[:2] == ['"Noto Sans"', '"Noto Sans CJK JP"']

"""Markdown from card sections turned into HTML that is safe to put in a page or a PDF."""

import markdown as markdown_lib
import nh3
from django.utils.safestring import SafeString, mark_safe

_EXTENSIONS = ["tables", "fenced_code", "sane_lists"]
# nh3's defaults minus images: a card links out, it does not pull content in.
_TAGS = set(nh3.ALLOWED_TAGS) - {"img"}


def markdown_to_html(text: str) -> SafeString:
    """Render Markdown, then sanitise: raw HTML, scripts, event handlers and javascript:
    links in the source are removed, whatever the Markdown renderer let through."""
    if not text or not text.strip():
        return mark_safe("")  # nosec B308  # a constant empty string
    rendered = markdown_lib.markdown(text, extensions=_EXTENSIONS, output_format="html")
    clean = nh3.clean(rendered, tags=_TAGS, url_schemes={"http", "https", "mailto"})
    # Safe to mark: nh3 just above kept only the allowed tags, attributes and URL schemes.
    return mark_safe(clean)  # noqa: S308  # nosec B308, B703  # sanitised by nh3

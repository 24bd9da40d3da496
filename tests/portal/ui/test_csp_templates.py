"""Templates a strict CSP would break, found without a browser: Plotly loaded other than
through `includes/plotly.html` (which declares its styles present, so Plotly adds no
<style> element the CSP refuses), and style or script written inline in a page's HTML.
The browser walk (tests/e2e/test_csp_pages.py) catches what only runs in the browser;
this catches the pages the walk's data does not reach."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
# Documents, never pages served under the CSP: rendered by WeasyPrint into PDFs (the
# print templates, evidence pack sections, the erasure certificate), or the summary
# file inside a data subject's access package, opened from their own disk.
PRINT_ONLY = (
    "_print.html",
    "evidence_section.html",
    "datasubjects/certificate.html",
    "datasubjects/package/summary.html",
)
COMMENTS = re.compile(r"{% comment %}.*?{% endcomment %}|{#.*?#}|<!--.*?-->", re.S)
INLINE = {
    "style attribute": re.compile(r"<[a-zA-Z][^>]*\sstyle\s*=", re.S),
    "style element": re.compile(r"<style[\s>]"),
    "inline handler": re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.S),
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/(ld\+)?json)[^>]*>"),
}


def _templates() -> list[Path]:
    found = []
    for folder in ("templates", "governance", "monitoring", "datasubjects", "portal"):
        found += sorted((ROOT / folder).rglob("*.html"))
    return [p for p in found if "templates" in p.parts]


def test_templates_load_plotly_only_through_the_csp_include():
    templates = _templates()
    assert len(templates) > 50
    loading = [
        str(p.relative_to(ROOT))
        for p in templates
        if "plotly.min.js" in p.read_text() and p.name != "plotly.html"
    ]
    assert loading == []


def test_served_templates_write_no_inline_style_or_script():
    found = []
    for path in _templates():
        if path.as_posix().endswith(PRINT_ONLY):
            continue
        text = COMMENTS.sub("", path.read_text())
        for kind, pattern in INLINE.items():
            if pattern.search(text):
                found.append(f"{path.relative_to(ROOT)}: {kind}")
    assert found == []

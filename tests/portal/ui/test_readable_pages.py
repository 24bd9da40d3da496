"""No page shows Python's view of its data.

Loads the demo's people, registry and reviews, then follows every link a person holding
every role can reach from the home page, and reads each page's visible text (not its
scripts, styles or attribute values) for what only a Python repr prints: `None`,
`True`/`False`, `{'`, `['`, `[{`, a pseudonymous `user:6` where a name belongs, and
floats printed to 16 digits, roles as slugs.
"""

import re
from collections import Counter
from html.parser import HTMLParser
from io import StringIO
from urllib.parse import urldefrag, urlsplit

import pytest
from django.core.management import call_command
from django.urls import Resolver404, resolve

from portal.accounts.choices import Role

pytestmark = pytest.mark.django_db

# Not pages to read: downloads, the Django admin (its own look), JSON, sign-out.
SKIP = ("/static/", "/django-admin/", "/api/", "/accounts/logout", "/hooks/", "/metrics")
MAX_PAGES = 400
PER_VIEW = 4
# The ledger's own pages show the pseudonymous id beside the name, and each event's
# payload as the JSON the chain recorded, on purpose: that is the evidence, and what an
# auditor searches by.
LEDGER_PAGES = "/audit/"
LEDGER_VERBATIM = {"user id instead of a name", "role slug"}
REPRS = {
    "Python None": re.compile(r"\bNone\b"),
    "Python boolean": re.compile(r"\b(True|False)\b"),
    "dict repr": re.compile(r"\{'"),
    "list repr": re.compile(r"\[['{]"),
    "user id instead of a name": re.compile(r"\buser:\d+\b"),
    "16-digit float": re.compile(r"\d\.\d{9,}"),
    "role slug": re.compile(r"\b(data_science_lead|privacy_officer|model_owner|portal_admin)\b"),
}


class _VisibleText(HTMLParser):
    """The text a reader sees, and the links to follow."""

    HIDDEN = {"script", "style", "template"}

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def _read(html: str) -> _VisibleText:
    parser = _VisibleText()
    parser.feed(html)
    return parser


def _crawl(client) -> dict[str, str]:
    """Every kind of page reachable from home by links (a few of each kind, so one long
    list's pages do not crowd out the rest): path -> visible text."""
    seen: dict[str, str] = {}
    per_view: Counter[str] = Counter()
    # Home, and the queue's tab of decided reviews (the demo leaves none open).
    queue = ["/", "/reviews/?tab=decided"]
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen:
            continue
        try:
            view = resolve(urlsplit(path).path).view_name
        except Resolver404:
            view = path
        per_view[view] += 1
        if per_view[view] > PER_VIEW:
            continue
        response = client.get(path)
        seen[path] = ""
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        page = _read(response.content.decode())
        seen[path] = " ".join(page.text)
        for href in page.links:
            target = urldefrag(href).url
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not target.startswith("/"):
                continue
            if target.startswith(SKIP) or target in seen:
                continue
            queue.append(target)
    return seen


@pytest.fixture()
def demo_world(db, settings, tmp_path):
    """The demo as `make demo` loads it, on a smaller sample lake of its own."""
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    settings.PIPELINES_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    settings.VAR_DIR = tmp_path
    quiet = {"stdout": StringIO()}
    call_command("demo_users", **quiet)
    call_command("demo_registry", **quiet)
    call_command("demo_training", "--transactions", "20000", **quiet)
    call_command("demo_reviews", **quiet)


def test_pages_reached_from_home_show_no_python_reprs(client_for, make_user, demo_world):
    person = make_user(*Role, full_name="Everett Everyrole")
    pages = _crawl(client_for(person))
    # The walk must reach the pages it guards.
    assert len(pages) > 60, sorted(pages)
    kinds = {resolve(urlsplit(path).path).view_name for path in pages}
    assert {
        "ui:home",
        "governance:review_detail",
        "governance:version_detail",
        "governance:model_detail",
        "governance:run_detail",
        "monitoring:overview",
        "audit:event_detail",
    } <= kinds, sorted(kinds)
    found = []
    for path, text in pages.items():
        for kind, pattern in REPRS.items():
            if kind in LEDGER_VERBATIM and path.startswith(LEDGER_PAGES):
                continue
            for match in pattern.finditer(text):
                context = text[max(match.start() - 40, 0) : match.end() + 40].replace("\n", " ")
                found.append(f"{path}: {kind}: …{context}…")
    assert found == []

"""No page breaks the Content Security Policy, read in a real browser.

The portal's CSP allows scripts and styles from its own origin only: no inline `<style>`,
no `style="…"` attribute, no inline script or handler. A template or a JavaScript
library that writes one is refused by the browser, which logs a violation (and the style
or script does not apply). These tests load pages in Chromium and fail on any violation:
the model page with its metric charts drawn, then a walk over every kind of page linked
from the home page of a person holding every role, on the demo registry's data.

Set SCREENSHOT_DIR to keep screenshots of the model page and a version page at 1400 px.
"""

import os
from io import StringIO
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from django.core.management import call_command
from django.urls import Resolver404, resolve
from playwright.sync_api import ConsoleMessage, Page, expect
from playwright.sync_api import Error as PlaywrightError

from governance.choices import Target
from governance.models import ModelVersion
from governance.reviews.choices import ReviewSource
from governance.reviews.services import review_open
from portal.accounts.choices import Role
from portal.accounts.models import User
from tests.e2e.browsing import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1400, "height": 900}
# Not pages: downloads, the Django admin (its own look and its own inline scripts),
# JSON, sign-out, the metrics endpoint.
SKIP = ("/static/", "/django-admin/", "/api/", "/accounts/logout", "/hooks/", "/metrics")
PER_VIEW = 2
MAX_PAGES = 90


@pytest.fixture()
def demo_registry(migration_data) -> None:
    """The demo's people and registry (versions, cards, metrics and slices, targets), and
    one open canary review so the review pages have something to show."""
    quiet = {"stdout": StringIO()}
    call_command("demo_users", **quiet)
    call_command("demo_registry", **quiet)
    owner = User.objects.get(email="owner@zeromargin.example")
    candidate = ModelVersion.objects.get(model__slug="demand-forecasting", version="2.1.0")
    review_open(
        version=candidate,
        target=Target.PRODUCTION,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )


def _screenshot(page: Page, name: str) -> None:
    """Keep a full-page screenshot for a human to look at, when SCREENSHOT_DIR is set."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _watch(page: Page) -> list[str]:
    """Violations the page reports, each with the address it happened on."""
    found: list[str] = []

    def note(msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text:
            found.append(f"{page.url}: {msg.text}")

    page.on("console", note)
    return found


def test_model_page_draws_one_metric_at_a_time_without_csp_violations(
    live_server, make_user, demo_registry, person_page, csp_violations
):
    """The chart draws the picked metric alone on its own axis; picking another redraws
    it and keeps the choice in the address; Plotly adds no style the CSP refuses."""
    reader = make_user(Role.DATA_SCIENCE_LEAD)
    page = person_page(viewport=VIEWPORT)
    sign_in(page, live_server.url, reader.email, "/models/demand-forecasting/")
    expect(page.locator("#metrics-trend .main-svg").first).to_be_attached()
    expect(page.locator("#metrics-trend .ytitle")).to_have_text("MAE (units)")
    # One line: the other metrics (MAPE in [0, 1], RMSE) are not squeezed onto its axis.
    expect(page.locator("#metrics-trend .scatterlayer .trace")).to_have_count(1)
    picker = page.get_by_test_id("metric-picker")
    expect(picker.get_by_role("button", name="Show")).to_be_hidden()
    picker.get_by_label("MAPE").check()
    expect(page.locator("#metrics-trend .ytitle")).to_have_text("MAPE")
    # A share is shown as a percentage on its axis.
    expect(page.locator("#metrics-trend .ytick").last).to_contain_text("%")
    assert page.url.endswith("?metric=mape")
    # The address keeps the choice: reloading draws the same metric.
    page.reload()
    expect(page.locator("#metrics-trend .ytitle")).to_have_text("MAPE")
    expect(picker.get_by_label("MAPE")).to_be_checked()
    _screenshot(page, "model-page")
    page.get_by_test_id("versions").get_by_role("link", name="2.1.0", exact=True).click()
    expect(page.get_by_test_id("metrics-comparison")).to_be_visible()
    _screenshot(page, "version-page")
    assert csp_violations == []


def test_model_page_filters_versions_with_state_checkboxes(
    live_server, make_user, demo_registry, person_page, csp_violations
):
    reader = make_user(Role.AUDITOR)
    page = person_page(viewport=VIEWPORT)
    sign_in(page, live_server.url, reader.email, "/models/demand-forecasting/")
    filters = page.get_by_test_id("version-filters")
    filters.get_by_label("Production").check()
    filters.get_by_label("Canary").check()
    filters.get_by_role("button", name="Filter").click()
    versions = page.get_by_test_id("versions")
    expect(versions.locator(".timeline-item")).to_have_count(2)
    expect(versions).to_contain_text("2.0.0")
    expect(versions).to_contain_text("2.1.0")
    expect(versions).not_to_contain_text("1.0.0")
    expect(page.get_by_test_id("version-filters").get_by_label("Canary")).to_be_checked()
    assert csp_violations == []


def test_pages_reached_from_home_break_no_csp_rule(
    live_server, make_user, demo_registry, person_page
):
    person = make_user(*Role, full_name="Everett Everyrole")
    page = person_page(viewport=VIEWPORT)
    violations = _watch(page)
    sign_in(page, live_server.url, person.email, "/")
    base = live_server.url
    seen: set[str] = set()
    per_view: dict[str, int] = {}
    queue = ["/", "/reviews/"]
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen:
            continue
        try:
            view = resolve(urlsplit(path).path).view_name
        except Resolver404:
            continue
        per_view[view] = per_view.get(view, 0) + 1
        if per_view[view] > PER_VIEW:
            continue
        seen.add(path)
        try:
            response = page.goto(f"{base}{path}")
        except PlaywrightError as error:
            # An export answered as an attachment: a download, not a page.
            if "Download is starting" in error.message:
                continue
            raise
        if response is None or "text/html" not in (response.headers.get("content-type") or ""):
            continue
        page.wait_for_load_state("load")
        for href in page.eval_on_selector_all(
            "a[href]", "els => els.map(e => e.getAttribute('href'))"
        ):
            target = urldefrag(href).url
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not target.startswith("/"):
                continue
            if target.startswith(SKIP) or target in seen:
                continue
            queue.append(target)
    kinds = {resolve(urlsplit(path).path).view_name for path in seen}
    # The walk must reach the pages it guards.
    assert {
        "ui:home",
        "governance:model_list",
        "governance:model_detail",
        "governance:version_detail",
        "governance:review_detail",
        "monitoring:overview",
        "monitoring:model",
        "audit:event_detail",
    } <= kinds, sorted(kinds)
    assert violations == []

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
from datetime import timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from django.core.management import call_command
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from playwright.sync_api import ConsoleMessage, Page, expect
from playwright.sync_api import Error as PlaywrightError

from datasubjects.choices import LookupKey, RequestKind, RequestState, SourceKind
from datasubjects.models import DataSource, DataSubjectRequest
from governance.choices import Target
from governance.models import ModelVersion
from governance.reviews.choices import ReviewSource
from governance.reviews.models import ReviewPolicy
from governance.reviews.services import review_open
from governance.rollouts.choices import RolloutState
from governance.selectors.card_exports import CARD_PDF_EXPORT
from governance.training.choices import ImportState, RunState, RunTrigger
from governance.training.models import LakeImport, PipelineRun
from monitoring.models import Incident
from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.exports.models import ExportJob
from portal.notify.models import WebhookEndpoint
from tests.e2e.browsing import sign_in
from tests.factories.rollouts import RolloutFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1400, "height": 900}
# Not pages: downloads, the Django admin (its own look and its own inline scripts),
# JSON, sign-out, the metrics endpoint.
SKIP = ("/static/", "/django-admin/", "/api/", "/accounts/logout", "/hooks/", "/metrics")
PER_VIEW = 2
MAX_PAGES = 90
# Routes the walk does not load as pages, and why. Every other route outside the admin,
# the API, the hooks and the probes is a kind of page the walk must reach.
NOT_WALKED = {
    **dict.fromkeys(
        (
            "accounts:user_create", "accounts:user_role_grant", "accounts:user_role_revoke",
            "accounts:user_toggle_active", "accounts:user_set_password_link",
            "apitokens:create", "apitokens:revoke", "notify:endpoint_create",
            "notify:endpoint_deactivate", "notify:endpoint_test", "notify:delivery_resend",
            "changes:change_approve", "changes:change_reject", "audit:verify",
            "governance:card_section_confirm", "governance:model_settings",
            "governance:review_decide", "governance:review_recheck",
            "governance:policy_create", "governance:version_evidence_pack",
            "governance:run_cancel", "governance:rollout_start", "governance:rollout_decide",
            "monitoring:threshold_edit", "monitoring:incident_acknowledge",
            "monitoring:incident_close", "datasubjects:public_code_resend",
            "datasubjects:request_assign", "datasubjects:request_state",
            "datasubjects:request_extend", "datasubjects:request_refuse",
            "datasubjects:request_duplicate", "datasubjects:task_record_manual",
            "datasubjects:source_check", "datasubjects:request_evidence_pack",
            "datasubjects:consent_record", "datasubjects:suppression_lift",
        ),
        "a form's POST: its answer is the page it redirects to",
    ),
    **dict.fromkeys(
        (
            "audit:export", "governance:card_export", "exports:job_download",
            "datasubjects:consent_export", "datasubjects:request_package",
            "datasubjects:request_certificate", "datasubjects:public_package",
        ),
        "a download, not a page",
    ),
    **dict.fromkeys(
        (
            "governance:run_progress", "governance:import_progress",
            "governance:rollout_progress", "exports:job_progress",
        ),
        "a fragment htmx swaps into its page, which the walk loads",
    ),
    "accounts:login": "loaded (and watched) by sign_in before the walk",
    "accounts:set_password": "a one-time link for a person without a password",
    "datasubjects:public_verify": "a data subject's e-mailed code, for a request being filed",
    "datasubjects:public_status": "a data subject's signed, expiring link",
}  # fmt: skip


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


@pytest.fixture()
def one_of_each(demo_registry) -> list[str]:
    """A record behind each kind of page the registry's demo data has none of (a
    rollout, an incident, a training run, a lake import, a webhook, a model's own review
    policy, a data subject request and source, an export); returns the paths no page
    links to (an export's page is where asking for it leads)."""
    candidate = ModelVersion.objects.get(model__slug="demand-forecasting", version="2.1.0")
    model = candidate.model
    stable = ModelVersion.objects.get(model=model, version="2.0.0")
    RolloutFactory(version=candidate, stable_version=stable, state=RolloutState.PAUSED)
    Incident.objects.create(
        fingerprint="walk", title="Error rate above 2%", severity="warning",
        started_at=timezone.now(), model=model,
    )  # fmt: skip
    PipelineRun.objects.create(
        model=model, trigger=RunTrigger.MANUAL, requested_by="system:tests",
        state=RunState.SUCCEEDED, planned_version="9.9.9",
    )  # fmt: skip
    LakeImport.objects.create(
        sources=[{"table": "transactions", "uri": "gs://client-exports/transactions.csv"}],
        state=ImportState.SUCCEEDED, requested_by="system:tests",
    )  # fmt: skip
    WebhookEndpoint.objects.create(
        name="ops", url="https://hooks.example.com/x", secret="s" * 32, format="json",
        event_types=["rollout.finished"],
    )  # fmt: skip
    default = ReviewPolicy.objects.get(model=None, target=Target.STAGING)
    ReviewPolicy.objects.create(
        model=model, target=Target.STAGING, required_roles=default.required_roles,
        review_open_days=default.review_open_days,
        approval_valid_days=default.approval_valid_days,
    )  # fmt: skip
    DataSubjectRequest.objects.create(
        kind=RequestKind.ACCESS, state=RequestState.IN_PROGRESS,
        email="customer@example.com", subject_ref="customer@example.com",
        verified_at=timezone.now(), received_on=timezone.localdate(),
        due_on=timezone.localdate() + timedelta(days=30),
    )  # fmt: skip
    DataSource.objects.create(
        slug="lake", name="Data lake", kind=SourceKind.LAKE, lookup_key=LookupKey.EMAIL
    )
    job = ExportJob.objects.create(
        kind=CARD_PDF_EXPORT, params={"card_id": candidate.card.pk}, title="Model card PDF"
    )
    return [f"/exports/{job.pk}/"]


def _page_kinds() -> set[str]:
    """The name of every route of the portal outside the Django admin, the API, the
    hooks, the probes and social sign-in: the kinds of page a person can open."""

    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                yield from walk(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield f"{namespace}{pattern.name}", str(pattern.pattern)

    return {
        name
        for name, route in walk(get_resolver().url_patterns)
        if not name.startswith(("admin:", "social:", "api-", "changes:api-"))
        and not f"/{route}".startswith(SKIP)
        and name not in ("healthz", "readyz", "metrics", "jwks")
    }


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
    live_server, make_user, one_of_each, person_page
):
    """Every kind of page (each route but those NOT_WALKED says why not), reached by
    following links and GET forms from the home page of a person holding every role,
    breaks no CSP rule."""
    person = make_user(*Role, full_name="Everett Everyrole")
    page = person_page(viewport=VIEWPORT)
    violations = _watch(page)
    sign_in(page, live_server.url, person.email, "/")
    base = live_server.url
    seen: set[str] = set()
    per_view: dict[str, int] = {}
    queue = ["/", "/reviews/", *one_of_each]
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
        links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        # A GET form (filters, a comparison) opens a page too: its address, unfilled.
        links += page.eval_on_selector_all(
            "form[action]:not([method=post])", "els => els.map(e => e.getAttribute('action'))"
        )
        for href in links:
            target = urldefrag(href).url
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not target.startswith("/"):
                continue
            if target.startswith(SKIP) or target in seen:
                continue
            queue.append(target)
    kinds = {resolve(urlsplit(path).path).view_name for path in seen}
    # The walk must reach every kind of page but those it cannot load as a page.
    if stale := sorted(NOT_WALKED.keys() - _page_kinds()):
        pytest.fail(f"NOT_WALKED names routes that are gone: {', '.join(stale)}")
    if missed := sorted(_page_kinds() - NOT_WALKED.keys() - kinds):
        pytest.fail(f"The walk did not reach these kinds of page: {', '.join(missed)}")
    assert violations == []

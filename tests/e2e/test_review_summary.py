"""The review page as a decision summary, read in a real browser at 1400 px.

A data science lead opens a canary review, reads what the summary says (blocked, which
roles are still needed, the checks' verdicts, the comparison with production agreeing
with the metrics check) and approves after the page asks; DevOps first dismisses the
question (nothing is sent), then approves, and the summary turns ready. The model card,
its diff and the history are collapsed below the decision.

Set REVIEW_SCREENSHOT_DIR to keep screenshots of the page for a human to look at.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from governance.choices import LifecycleState, Target
from governance.models import RegisteredModel, TargetAssignment
from governance.reviews.choices import ReviewSource, ReviewState, Verdict
from governance.reviews.models import Review, ReviewDecision
from governance.reviews.services import review_decide, review_open
from portal.accounts.choices import Role
from tests.e2e.browsing import sign_in
from tests.factories import ModelVersionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1400, "height": 900}


def _measure(page: Page, name: str) -> dict[str, float]:
    """Page height and how far down the decision form starts, in CSS pixels."""
    figures = page.evaluate(
        """() => {
            const form = document.querySelector('[data-testid="decision-form"]');
            return {
                height: document.documentElement.scrollHeight,
                form_top: form ? form.getBoundingClientRect().top + window.scrollY : -1,
            };
        }"""
    )
    print(f"{name}: page height {figures['height']} px, decision form at {figures['form_top']} px")
    folder = os.environ.get("REVIEW_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
    return figures


def _canary_review(owner, lead) -> Review:
    """demand-forecasting: production serves a version with MAE 400; the candidate (MAE
    350, better) is approved for staging and waits for the canary board."""
    model = RegisteredModel.objects.get(slug="demand-forecasting")
    production = ModelVersionFactory(
        model=model,
        state=LifecycleState.PRODUCTION,
        metrics={"mae": 400.0, "mape": 0.15, "rmse": 520.0},
    )
    TargetAssignment.objects.create(model=model, target=Target.PRODUCTION, version=production)
    candidate = ModelVersionFactory(
        model=model, metrics={"mae": 350.0, "mape": 0.12, "rmse": 480.0}
    )
    staging, _ = review_open(
        version=candidate,
        target=Target.STAGING,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )
    review_decide(
        review=staging, reviewer=lead, verdict=Verdict.APPROVE, role=Role.DATA_SCIENCE_LEAD
    )
    review, _ = review_open(
        version=candidate,
        target=Target.CANARY,
        requested_by_actor=owner.audit_actor(),
        source=ReviewSource.UI,
    )
    return review


def _choose_approve(page: Page) -> None:
    page.get_by_test_id("decision-form").get_by_label("Approve", exact=True).check()


def test_board_reads_summary_and_approves_canary_review_in_browser(
    live_server, make_user, migration_data, person_page, csp_violations
):
    base = live_server.url
    owner = make_user(Role.MODEL_OWNER, email="olive.owner@zeromargin.example")
    lead = make_user(
        Role.DATA_SCIENCE_LEAD, email="dana.lead@zeromargin.example", full_name="Dana Lead"
    )
    devops = make_user(Role.DEVOPS, email="devon.ops@zeromargin.example", full_name="Devon Ops")
    review = _canary_review(owner, lead)
    version = review.version
    path = f"/reviews/{review.pk}/"

    # The lead's home page says what waits for them; the review is one click away.
    page = person_page(viewport=VIEWPORT)
    sign_in(page, base, lead.email, "/")
    waiting = page.get_by_test_id("home-reviews-waiting")
    expect(waiting.get_by_role("row").filter(has_text=version.version)).to_contain_text(
        "Data science lead"
    )
    _measure(page, "home-lead")
    waiting.get_by_role("link", name=f"#{review.pk}").click()
    expect(page).to_have_url(f"{base}{path}")
    figures = _measure(page, "review-page-lead")

    # The summary: blocked, both roles still needed, every check passing.
    summary = page.get_by_test_id("decision-summary")
    expect(summary.get_by_test_id("summary-verdict")).to_have_text("blocked")
    expect(summary.get_by_test_id("roles-needed")).to_have_text(
        "Still needed: Data science lead (1 more), DevOps (1 more)."
    )
    checks = page.get_by_test_id("checks")
    expect(checks.get_by_text("fail", exact=True)).to_have_count(0)
    metrics_check = checks.get_by_role("row").filter(has_text="not worse")
    expect(metrics_check).to_contain_text("pass")
    expect(metrics_check).to_contain_text("within tolerance of production")
    # The table beside it says the same thing: MAE 350 against 400 is better, not worse.
    mae = page.get_by_test_id("metrics-comparison").get_by_role("row").filter(has_text="mae")
    expect(mae).to_contain_text("350")
    expect(mae).to_contain_text("400")
    expect(mae).to_contain_text("better")
    expect(page.get_by_test_id("comparison-kind")).to_have_text("registered metrics")

    # Card, card diff and history are there, collapsed under the decision.
    for part in ("card-details", "history-details"):
        details = page.get_by_test_id(part)
        expect(details).to_have_count(1)
        assert details.evaluate("element => element.open") is False
    expect(page.get_by_test_id("section-purpose")).not_to_be_visible()
    assert 0 < figures["form_top"] < VIEWPORT["height"] * 1.5

    # Approving asks first, naming what is approved; the lead says yes.
    questions: list[str] = []

    def accept(dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    _choose_approve(page)
    page.once("dialog", accept)
    page.get_by_test_id("decision-form").get_by_role("button", name="Record decision").click()
    expect(page.get_by_text("Your decision is recorded.")).to_be_visible()
    assert questions == [
        f"Approve: demand-forecasting {version.version} to canary? "
        "Your decision is recorded in the audit trail and the board is told."
    ]
    expect(summary.get_by_test_id("summary-verdict")).to_have_text("blocked")
    expect(summary.get_by_test_id("roles-needed")).to_have_text("Still needed: DevOps (1 more).")

    # DevOps dismisses the question: nothing is sent, nothing is recorded.
    devops_page = person_page(viewport=VIEWPORT)
    sign_in(devops_page, base, devops.email, path)
    posts: list[str] = []
    devops_page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    dismissed: list[str] = []

    def dismiss(dialog) -> None:
        dismissed.append(dialog.message)
        dialog.dismiss()

    _choose_approve(devops_page)
    devops_page.once("dialog", dismiss)
    devops_page.get_by_role("button", name="Record decision").click()
    expect(devops_page.get_by_test_id("summary-verdict")).to_have_text("blocked")
    assert len(dismissed) == 1 and dismissed[0].startswith("Approve: demand-forecasting")
    assert posts == []
    assert not ReviewDecision.objects.filter(review=review, reviewer=devops).exists()

    # Then approves: the second approval makes the review ready.
    devops_page.once("dialog", lambda dialog: dialog.accept())
    devops_page.get_by_role("button", name="Record decision").click()
    expect(devops_page.get_by_text("The review is approved.")).to_be_visible()
    expect(devops_page.get_by_test_id("summary-verdict")).to_have_text("ready")
    expect(devops_page.get_by_test_id("review-state")).to_have_text("Approved")
    assert len(posts) == 1 and posts[0].endswith(f"/reviews/{review.pk}/decide/")
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED
    # The history names the people who acted, not their pseudonymous ids.
    history = devops_page.get_by_test_id("history-details")
    history.locator("summary").click()
    expect(history).to_contain_text("Dana Lead")
    expect(history).not_to_contain_text(f"user:{lead.pk}")
    _measure(devops_page, "review-page-ready")
    # Decided: it no longer waits for DevOps on their home page.
    devops_page.goto(f"{base}/")
    expect(devops_page.get_by_test_id("home-reviews-waiting")).to_contain_text(
        "No review waits for your decision."
    )
    assert csp_violations == []


def test_long_unbroken_text_wraps_instead_of_widening_the_review_page(
    live_server, make_user, migration_data, person_page, csp_violations
):
    """A 10,000-character word in a card section, a comment as long as a decision may be
    (5,000 characters, one word), and a 254-character e-mail as the requester's name,
    wrap inside the 1400 px page."""
    long_email = "r" * 64 + "@" + "d" * 180 + ".example"
    owner = make_user(Role.MODEL_OWNER, email=long_email[:254], full_name="")
    lead = make_user(Role.DATA_SCIENCE_LEAD)
    devops = make_user(Role.DEVOPS)
    review = _canary_review(owner, lead)
    section = review.version.card.sections.get(key="limitations")
    section.content = "w" * 10_000
    section.save(update_fields=["content"])
    review_decide(
        review=review,
        reviewer=devops,
        verdict=Verdict.REQUEST_CHANGES,
        role=Role.DEVOPS,
        comment="c" * 5_000,
    )
    page = person_page(viewport=VIEWPORT)
    sign_in(page, live_server.url, lead.email, f"/reviews/{review.pk}/")
    page.get_by_test_id("card-details").locator("summary").click()
    expect(page.get_by_test_id("section-limitations")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], width
    assert csp_violations == []

"""The review board in a real browser: a model owner opens a production review, the
three board members approve it on the review page, and the deployment gate turns from
403 to 200 with an attestation that verifies against the published keys. The owner,
though also a data science lead, may not approve their own review."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from playwright.sync_api import Page, expect

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.choices import ReviewSource, ReviewState, Verdict
from governance.reviews.models import Review, ReviewDecision
from governance.reviews.services import review_decide, review_open
from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.apitokens.choices import Scope
from portal.apitokens.services import apitoken_create
from portal.attestation import attestation_verify
from portal.audit.actors import Actor
from tests.e2e.browsing import sign_in
from tests.factories import ModelVersionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VERIFY_SCRIPT = Path(settings.BASE_DIR) / "deploy" / "ci" / "verify-attestation.py"
TIMEOUT = 10


def _approve(page: Page) -> None:
    form = page.get_by_test_id("decision-form")
    form.get_by_label("Approve", exact=True).check()
    # The page asks before it records a decision; this reviewer says yes.
    page.once("dialog", lambda dialog: dialog.accept())
    form.get_by_role("button", name="Record decision").click()


def _version_ready_for_production(owner: User, lead: User, devops: User) -> ModelVersion:
    """A demand forecasting version with a complete card, fairness assessment and
    lineage, approved for staging and canary through the services (production's policy
    wants the canary approval first)."""
    version = ModelVersionFactory(model=RegisteredModel.objects.get(slug="demand-forecasting"))
    for target, approvers in (
        (Target.STAGING, [(lead, Role.DATA_SCIENCE_LEAD)]),
        (Target.CANARY, [(lead, Role.DATA_SCIENCE_LEAD), (devops, Role.DEVOPS)]),
    ):
        review, _ = review_open(
            version=version,
            target=target,
            requested_by_actor=owner.audit_actor(),
            source=ReviewSource.UI,
        )
        for person, role in approvers:
            review_decide(review=review, reviewer=person, verdict=Verdict.APPROVE, role=role)
        review.refresh_from_db()
        assert review.state == ReviewState.APPROVED, review.checks
    return version


def test_board_approves_production_review_in_browser_and_gate_opens(
    live_server, make_user, migration_data, person_page, csp_violations, tmp_path
):
    base = live_server.url
    owner = make_user(
        Role.MODEL_OWNER,
        Role.DATA_SCIENCE_LEAD,
        email="olive.owner@zeromargin.example",
        full_name="Olive Owner",
    )
    lead = make_user(Role.DATA_SCIENCE_LEAD, email="dana.lead@zeromargin.example")
    privacy = make_user(Role.PRIVACY_OFFICER, email="priya.privacy@zeromargin.example")
    devops = make_user(Role.DEVOPS, email="devon.ops@zeromargin.example")
    version = _version_ready_for_production(owner, lead, devops)
    ci = apitoken_create(
        name="ci gate",
        owner=make_user(Role.AUDITOR),  # a token does only what its owner may: read gates
        scopes=[Scope.GATES_READ],
        expires_at=None,
        actor=Actor.system("tests"),
    )
    gate_url = f"{base}/api/v1/gates/demand-forecasting/{version.version}/production"
    ci_headers = {"Authorization": f"Bearer {ci.secret}"}

    # Before any review: the gate says there is none.
    before = requests.get(gate_url, headers=ci_headers, timeout=TIMEOUT)
    assert before.status_code == 403 and before.json()["state"] == "no_review"

    # The model owner opens the production review from the queue's "Open a review".
    owner_page = person_page()
    sign_in(owner_page, base, owner.email, "/reviews/")
    owner_page.get_by_role("link", name="Open a review").click()
    expect(owner_page).to_have_url(f"{base}/reviews/open/")
    owner_page.get_by_label("Version").select_option(value=str(version.pk))
    owner_page.get_by_label("Target").select_option(label="Production")
    owner_page.get_by_role("button", name="Open the review").click()
    expect(owner_page.get_by_text("The review is open; the board has been asked.")).to_be_visible()
    review = Review.objects.get(version=version, target=Target.PRODUCTION)
    assert review.requested_by == owner and review.source == ReviewSource.UI
    expect(owner_page).to_have_url(f"{base}/reviews/{review.pk}/")
    expect(owner_page.get_by_test_id("review-state")).to_have_text("Waiting for decisions")
    expect(owner_page.get_by_test_id("checks").get_by_text("fail")).to_have_count(0)

    # The owner holds a board role too, but may not approve what they asked for.
    _approve(owner_page)
    expect(
        owner_page.get_by_text("You requested this review; its policy does not let you approve it.")
    ).to_be_visible()
    expect(owner_page.get_by_test_id("review-state")).to_have_text("Waiting for decisions")
    assert not ReviewDecision.objects.filter(review=review).exists()

    review_path = f"/reviews/{review.pk}/"
    members = [(lead, Role.DATA_SCIENCE_LEAD), (privacy, Role.PRIVACY_OFFICER)]
    for person, role in members:
        page = person_page()
        sign_in(page, base, person.email, review_path)
        _approve(page)
        expect(
            page.get_by_text("Your decision is recorded. The review is waiting for decisions.")
        ).to_be_visible()
        expect(page.get_by_text(f"You decided approve as {Role(role).label}.")).to_be_visible()

    # Two of three: the gate still refuses, naming the role it waits for.
    pending = requests.get(gate_url, headers=ci_headers, timeout=TIMEOUT)
    assert pending.status_code == 403
    assert pending.json() | {"expires_at": None} == {
        "allowed": False,
        "state": "pending",
        "review": review.pk,
        "missing_roles": [Role.DEVOPS],
        "failed_checks": [],
        "expires_at": None,
        "error": f"demand-forecasting {version.version} may not deploy to production: pending.",
        "fields": {},
    }

    devops_page = person_page()
    sign_in(devops_page, base, devops.email, review_path)
    _approve(devops_page)
    expect(
        devops_page.get_by_text("Your decision is recorded. The review is approved.")
    ).to_be_visible()
    expect(devops_page.get_by_test_id("review-state")).to_have_text("Approved")
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED
    assert sorted(
        ReviewDecision.objects.filter(review=review, active=True).values_list(
            "reviewer__email", "role", "verdict"
        )
    ) == sorted(
        [
            (lead.email, Role.DATA_SCIENCE_LEAD, Verdict.APPROVE),
            (privacy.email, Role.PRIVACY_OFFICER, Verdict.APPROVE),
            (devops.email, Role.DEVOPS, Verdict.APPROVE),
        ]
    )

    # All three: the gate lets it deploy, with an attestation the published keys verify.
    allowed = requests.get(gate_url, headers=ci_headers, timeout=TIMEOUT)
    assert allowed.status_code == 200
    body = allowed.json()
    assert body["allowed"] is True and body["review"] == review.pk
    assert sorted(a["role"] for a in body["approvals"]) == sorted(
        [Role.DATA_SCIENCE_LEAD, Role.PRIVACY_OFFICER, Role.DEVOPS]
    )
    jwks = requests.get(f"{base}/.well-known/jwks.json", timeout=TIMEOUT).json()
    claims = attestation_verify(body["attestation"], jwks)
    assert {k: claims[k] for k in ("model", "version", "target", "image_digest", "review")} == {
        "model": "demand-forecasting",
        "version": version.version,
        "target": "production",
        "image_digest": version.image_digest,
        "review": review.pk,
    }
    assert sorted(a["reviewer"] for a in claims["approvers"]) == sorted(
        f"user:{person.pk}" for person in (lead, privacy, devops)
    )

    # The deploy step's own verifier, run as CI would run it, agrees.
    _verify_with_ci_script(body["attestation"], jwks, version, tmp_path)
    assert csp_violations == []


def _verify_with_ci_script(
    attestation: str, jwks: dict, version: ModelVersion, scratch: Path
) -> None:
    jwks_file, token_file = scratch / "jwks.json", scratch / "attestation.jwt"
    jwks_file.write_text(json.dumps(jwks))
    token_file.write_text(attestation)
    result = subprocess.run(
        [
            sys.executable,
            str(VERIFY_SCRIPT),
            "--jwks",
            str(jwks_file),
            "--attestation",
            str(token_file),
            "--model",
            "demand-forecasting",
            "--version",
            version.version,
            "--target",
            "production",
            "--image-digest",
            version.image_digest,
            "--issuer",
            settings.PORTAL_BASE_URL,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verify-attestation: OK demand-forecasting")

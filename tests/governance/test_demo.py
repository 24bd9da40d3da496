"""`manage.py demo_registry`: realistic versions per model, one in production and one
in canary each, each approved by the demo board for its target before it was assigned;
a second run changes nothing. And the demo as `make demo` loads it up to its reviews:
every (version, target) it assigned, the gate lets deploy, on the board's decisions."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance.choices import Target
from governance.models import ModelVersion, TargetAssignment
from governance.reviews.choices import ReviewState, Verdict
from governance.reviews.models import Review, ReviewPolicy
from governance.selectors.cards import card_missing_sections
from governance.selectors.fairness import fairness_assessment_rows
from portal.accounts.models import User
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

BOARD = {
    Target.STAGING: {"data_science_lead"},
    Target.CANARY: {"data_science_lead", "devops"},
    Target.PRODUCTION: {"data_science_lead", "devops", "privacy_officer"},
}


def _gate_statuses(client) -> dict[tuple[str, str, str], int]:
    """{(model, version, target): the gate API's status} for every assignment now."""
    owner = User.objects.get(email="owner@zeromargin.example")
    token = apitoken_create(
        name="ci", owner=owner, scopes=["gates:read"], expires_at=None, actor=Actor.system("t")
    )
    return {
        (a.model.slug, a.version.version, a.target): client.get(
            f"/api/v1/gates/{a.model.slug}/{a.version.version}/{a.target}",
            HTTP_AUTHORIZATION=f"Bearer {token.secret}",
        ).status_code
        for a in TargetAssignment.objects.select_related("model", "version")
    }


def _assert_board_approved_every_assignment() -> None:
    """Each assigned version's review for its target is approved, with an active
    approval from each role the default policy asks for."""
    for assignment in TargetAssignment.objects.select_related("version"):
        review = Review.objects.get(
            version=assignment.version, target=assignment.target, state=ReviewState.APPROVED
        )
        roles = set(
            review.decisions.filter(active=True, verdict=Verdict.APPROVE).values_list(
                "role", flat=True
            )
        )
        assert roles == BOARD[assignment.target], (assignment, roles)


def test_demo_registry_needs_the_demo_board():
    with pytest.raises(CommandError, match="demo_users"):
        call_command("demo_registry", stdout=StringIO())
    assert not ModelVersion.objects.exists()


def test_demo_registry_loads_consistent_data_and_is_idempotent(client):
    call_command("demo_users", stdout=StringIO())
    call_command("demo_registry")
    assert ModelVersion.objects.count() == 13
    targets = {
        (a.model.slug, a.target): a.version.version
        for a in TargetAssignment.objects.select_related("model", "version")
    }
    assert targets == {
        ("demand-forecasting", "production"): "2.0.0",
        ("demand-forecasting", "canary"): "2.1.0",
        ("customer-segmentation", "production"): "1.2.0",
        ("customer-segmentation", "canary"): "1.3.0",
        ("product-recommendation", "production"): "2.1.0",
        ("product-recommendation", "canary"): "2.2.0",
    }
    production = ModelVersion.objects.get(model__slug="demand-forecasting", version="2.0.0")
    assert card_missing_sections(card=production.card) == []
    canary = ModelVersion.objects.get(model__slug="demand-forecasting", version="2.1.0")
    assert card_missing_sections(card=canary.card) == []  # the board's canary check
    assert canary.metrics["mae"] < production.metrics["mae"]
    assert canary.metrics["rmse"] > canary.metrics["mae"]
    segmentation = ModelVersion.objects.get(model__slug="customer-segmentation", version="1.2.0")
    assert segmentation.metrics["n_clusters"] == len(segmentation.metrics["cluster_sizes"])
    assert 0 < segmentation.metrics["silhouette"] < 1
    recommendation = ModelVersion.objects.get(model__slug="product-recommendation", version="2.1.0")
    assert 0 < recommendation.metrics["hit_rate_at_10"] < recommendation.metrics["coverage"] < 1
    retired = ModelVersion.objects.get(model__slug="demand-forecasting", version="1.0.0")
    assert retired.state == "retired"
    _assert_board_approved_every_assignment()
    assert set(_gate_statuses(client).values()) == {200}

    # Each card's fairness rows state what its version's slices hold, nothing invented.
    for first in ModelVersion.objects.filter(version="1.0.0").select_related("model"):
        rows = first.card.sections.get(key="fairness_assessment").data["assessments"]
        assert rows == fairness_assessment_rows(version=first, assessed_by="Data science lead")
        assert rows and all(row["result"].startswith("measured on the held-out") for row in rows)

    events = AuditEvent.objects.count()
    call_command("demo_registry")
    assert ModelVersion.objects.count() == 13
    assert AuditEvent.objects.count() == events


def test_the_demo_assigns_nothing_the_gate_refuses(client, settings, tmp_path):
    """demo_users, demo_registry, demo_training and demo_reviews as `make demo` runs
    them: the trained versions now in production went through the board like the
    registry's (their first comparison waived by a four-eyes policy exception, removed
    again), so the gate answers 200 for every (version, target) assigned."""
    settings.PIPELINES_LAKE_ROOT = str(tmp_path / "lake")
    settings.PIPELINES_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    settings.VAR_DIR = tmp_path
    quiet = {"stdout": StringIO()}
    call_command("demo_users", **quiet)
    call_command("demo_registry", **quiet)
    call_command("demo_training", "--transactions", "20000", **quiet)
    call_command("demo_reviews", **quiet)

    production = {
        a.model.slug: a.version
        for a in TargetAssignment.objects.filter(target=Target.PRODUCTION).select_related(
            "model", "version"
        )
    }
    assert all(version.pipeline_run_id.startswith("portal-run-") for version in production.values())
    statuses = _gate_statuses(client)
    assert len(statuses) == 6 and set(statuses.values()) == {200}, statuses
    _assert_board_approved_every_assignment()
    # The exception is gone: later reviews compare metrics under the default policies.
    assert not ReviewPolicy.objects.filter(model__isnull=False).exists()
    forecast = production["demand-forecasting"]
    review = Review.objects.get(version=forecast, target=Target.PRODUCTION)
    assert review.policy_snapshot["check_metrics_not_worse"] is False
    assert AuditEvent.objects.filter(action="change_request.approved").count() >= 6

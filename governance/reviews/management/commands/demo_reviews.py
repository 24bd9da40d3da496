"""Demo: bring one trained version to the door of production, so a visitor can walk the
board's last step themselves (open the production review, approve as the three board
members, watch the gate open)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from governance.choices import CardSectionKey, LifecycleState, Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.management.demo_board import REQUESTER_EMAIL, board_approve, demo_board
from governance.reviews.models import Review
from governance.selectors.cards import card_missing_sections
from governance.selectors.fairness import fairness_assessment_rows
from governance.selectors.registry import production_version
from governance.services.cards import card_section_write
from governance.services.registry import model_update
from portal.accounts.models import User
from portal.audit.actors import Actor

DEMO = Actor.system("demo")
MODEL = "demand-forecasting"

CARD_TEXT = {
    CardSectionKey.MODEL_DETAILS: (
        "Gradient-boosted daily sales forecaster per product category, owned by the demand "
        "planning team. Licence: proprietary (Zero Margin). References: the MLOps design.",
        None,
    ),
    CardSectionKey.INTENDED_USE: (
        "Forecasts daily unit sales per category for stock replenishment, 1 to 4 weeks ahead.\n\n"
        "**Out of scope:** pricing decisions, forecasts for single stores or single customers.",
        None,
    ),
    CardSectionKey.LIMITATIONS: (
        "Weak on new categories with under 8 weeks of history and on promotions announced "
        "at short notice; seasonal breaks (as in the shifted snapshot) widen the error.",
        None,
    ),
    CardSectionKey.ETHICAL_CONSIDERATIONS: (
        "Uses no personal data: sales are summed per category and day. Risk: under-stocking "
        "essentials; mitigated by planners reviewing forecasts before orders are placed.",
        None,
    ),
    CardSectionKey.CAVEATS_RECOMMENDATIONS: (
        "Retrain when the drift alert fires or weekly; check the per-category slices.",
        None,
    ),
}


FAIRNESS_TEXT = (
    "Forecast error compared across product categories on the held-out window, as the "
    "training run measured it (the rows below come from its slice metrics). The pipeline "
    "sums sales over stores, so it evaluates no region: a regional comparison needs a "
    "per-region evaluation first."
)
FAIRNESS_READER = "Data science lead (demo), from the training run's slices"


class Command(BaseCommand):
    help = "Prepare a trained demand-forecasting version, approved for staging and canary."

    def handle(self, *args: object, **options: object) -> None:
        board = demo_board()
        owner = User.objects.filter(email=REQUESTER_EMAIL).first()
        if owner is None:
            raise CommandError("run `manage.py demo_users` first")
        for unowned in RegisteredModel.objects.filter(owner__isnull=True):
            model_update(
                model=unowned,
                owner=owner,
                risk_tier=unowned.risk_tier,
                description=unowned.description,
                actor=DEMO,
            )
        model = RegisteredModel.objects.get(slug=MODEL)
        production = production_version(model=model)
        version = (
            ModelVersion.objects.filter(
                model=model,
                state__in=[
                    LifecycleState.REGISTERED,
                    LifecycleState.IN_REVIEW,
                    LifecycleState.APPROVED,
                ],
            )
            .exclude(pipeline_run_id="")
            .order_by("-version_major", "-version_minor", "-version_patch")
            .first()
        )
        if version is None:
            raise CommandError("no trained version waiting: run `manage.py demo_training` first")
        if Review.objects.filter(version=version, target=Target.PRODUCTION).exists():
            self.stdout.write(f"Demo reviews: {MODEL} {version.version} already prepared.")
            return
        with transaction.atomic():
            # The fairness assessment states what the training run measured across
            # groups (its slice metrics), never a finding nobody measured.
            card_section_write(
                card=version.card,
                key=CardSectionKey.FAIRNESS_ASSESSMENT,
                content=FAIRNESS_TEXT,
                data={
                    "assessments": fairness_assessment_rows(
                        version=version, assessed_by=FAIRNESS_READER
                    )
                },
                actor=DEMO,
                comment="Demo: fairness assessment from the training run's slice metrics.",
            )
            for key in card_missing_sections(card=version.card):
                content, data = CARD_TEXT.get(key, ("Reviewed for the demo.", None))
                card_section_write(
                    card=version.card,
                    key=key,
                    content=content,
                    data=data,
                    actor=DEMO,
                    comment="Demo: card completed before review.",
                )
        # Canary comes after staging: the board approves both, as the policy asks.
        board_approve(version=version, target=Target.CANARY, board=board)
        self.stdout.write(
            f"Demo reviews: {MODEL} {version.version} is approved for staging and canary "
            f"(production runs {production.version if production else 'nothing'}). Sign in "
            "as owner@zeromargin.example to open its production review."
        )

"""Train the three models on the sample retail data for the demo (idempotent).

Writes the sample snapshot (100,000 transactions) and a shifted one (DEMO_SHIFT) to
the lake, trains each model on the first and puts that version into production, then
retrains on the shifted snapshot: each gets a newer version that is either sent to
review for canary or discarded as not better. A second call finds the runs done and
does nothing.

The first trained version reaches production through the board like any other (needs
`manage.py demo_users`): its card completed, then approved for staging, canary and
production by the demo board members. The registry's production version it replaces
recorded its metrics on another evaluation set, so the metrics comparison says nothing
there: two demo admins agree an exception (the model's own policies without that check,
a four-eyes governance change), removed once the board has decided.
"""

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from governance.choices import CardSectionKey, Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.management.demo_board import (
    board_approve,
    demo_board,
    metrics_comparison_waived,
)
from governance.selectors.baselines import production_comparison
from governance.selectors.cards import card_missing_sections
from governance.selectors.fairness import fairness_assessment_rows
from governance.selectors.registry import production_version
from governance.services.cards import card_section_write
from governance.services.registry import target_assign
from governance.training.choices import RunState, RunTrigger
from governance.training.management.commands.lake_sample import (
    MAX_TRANSACTIONS,
    MIN_TRANSACTIONS,
    transactions_checked,
)
from governance.training.models import PipelineRun
from governance.training.services import run_execute, run_start
from portal.audit.actors import Actor

ACTOR = Actor.system("demo")
DONE = (RunState.SUCCEEDED, RunState.DISCARDED)
FAIRNESS_TEXT = (
    "Compared across the groups the training run evaluated on its held-out data (the rows "
    "below come from its slice metrics)."
)
FAIRNESS_READER = "Data science lead (demo), from the training run's slices"


class Command(BaseCommand):
    help = "Train the three models on the sample data, then retrain on a shifted snapshot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--transactions",
            type=int,
            default=100_000,
            help=f"from {MIN_TRANSACTIONS:,} to {MAX_TRANSACTIONS:,}",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        transactions_checked(options["transactions"])
        self.board = demo_board()  # the board approves what goes to production
        from pipelines import DEMO_SHIFT, ensure_sample_snapshot  # -- slow

        root = settings.PIPELINES_LAKE_ROOT
        size = options["transactions"]
        base = ensure_sample_snapshot(root=root, seed=0, n_transactions=size)
        shifted = ensure_sample_snapshot(root=root, seed=0, n_transactions=size, shift=DEMO_SHIFT)
        self.stdout.write(f"Sample data: {base.id[:19]} and shifted {shifted.id[:19]}")
        for model in RegisteredModel.objects.order_by("slug"):
            first = self._train(model, base.id, "first training on the sample data", False)
            if first is None:
                continue
            self._to_production(first)
            self._train(model, shifted.id, "retraining on the shifted snapshot", True)

    def _train(
        self, model: RegisteredModel, snapshot_id: str, what: str, compare: bool
    ) -> PipelineRun | None:
        done = (
            PipelineRun.objects.filter(model=model, snapshot_id=snapshot_id, state__in=DONE)
            .filter(Q(reason__startswith="Demo:"))
            .select_related("version")
            .first()
        )
        if done is not None:
            self.stdout.write(f"{model.slug}: {what} already done (run #{done.pk}, {done.state})")
            return done
        run = run_start(
            model=model,
            trigger=RunTrigger.MANUAL,
            reason=f"Demo: {what}",
            actor=ACTOR,
            snapshot_id=snapshot_id,
            compare_with_production=compare,
            queue=False,
        )
        run = run_execute(run_id=run.pk)
        if run.state not in DONE:
            raise CommandError(f"{model.slug}: run #{run.pk} {run.state}: {run.outcome}")
        self.stdout.write(f"{model.slug}: run #{run.pk} {run.state}: {run.outcome}")
        return run

    def _to_production(self, run: PipelineRun) -> None:
        version = run.version
        if version is None or production_version(model=run.model) == version:
            return
        if PipelineRun.objects.filter(model=run.model, created_at__gt=run.created_at).exists():
            return  # the demo moved on already; leave production as it is
        self._card_complete(version)
        compared = production_comparison(version=version)
        waiver: AbstractContextManager[None] = nullcontext()
        if compared is not None and not compared.like_for_like:
            waiver = metrics_comparison_waived(
                model=run.model,
                targets=(Target.CANARY, Target.PRODUCTION),
                reason=(
                    f"Production {compared.production.version} recorded its metrics on "
                    "another evaluation set: the first version trained on the sample data "
                    "is not compared with them."
                ),
            )
        with waiver:
            board_approve(version=version, target=Target.PRODUCTION, board=self.board)
        target_assign(version=version, target=Target.PRODUCTION, actor=ACTOR)
        self.stdout.write(
            f"{run.model.slug}: {version.version} approved by the board, now serves production"
        )

    def _card_complete(self, version: ModelVersion) -> None:
        """Complete the card before review: the fairness rows from what the run measured
        across groups (its slice metrics), the other inherited sections confirmed."""
        card = version.card
        for key in card_missing_sections(card=card):
            section = card.sections.filter(key=key).first()
            if key == CardSectionKey.FAIRNESS_ASSESSMENT:
                content, data = (
                    FAIRNESS_TEXT,
                    {
                        "assessments": fairness_assessment_rows(
                            version=version, assessed_by=FAIRNESS_READER
                        )
                    },
                )
            elif section is not None and section.inherited:
                content, data = section.content, section.data
            else:
                continue  # nothing inherited to confirm: refused below
            card_section_write(
                card=card,
                key=key,
                content=content,
                data=data,
                actor=ACTOR,
                comment="Demo: card completed before review.",
            )
        missing = card_missing_sections(card=card)
        if missing:
            raise CommandError(
                f"{version.model.slug} {version.version}: its card has no {', '.join(missing)} "
                "to confirm: run `manage.py demo_registry` first (trained versions inherit "
                "its cards)"
            )

"""Train the three models on the sample retail data for the demo (idempotent).

Writes the sample snapshot (100,000 transactions) and a shifted one (DEMO_SHIFT) to
the lake, trains each model on the first and puts that version into production, then
retrains on the shifted snapshot: each gets a newer version that is either sent to
review for canary or discarded as not better. A second call finds the runs done and
does nothing.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from governance.choices import LifecycleState, Target
from governance.models import RegisteredModel
from governance.selectors.registry import production_version
from governance.services.registry import target_assign, version_set_state
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
        if version.state == LifecycleState.REGISTERED:
            version_set_state(version=version, state=LifecycleState.APPROVED, actor=ACTOR)
        target_assign(version=version, target=Target.PRODUCTION, actor=ACTOR)
        self.stdout.write(f"{run.model.slug}: {version.version} now serves production")

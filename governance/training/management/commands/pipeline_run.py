"""Start a training run of a model: `manage.py pipeline_run demand-forecasting`.

Without --wait the run is queued for a worker; with --wait it runs here, in this
process, printing each step's log as it goes.
"""

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import RegisteredModel
from governance.training.choices import RunState, RunTrigger
from governance.training.models import PipelineRun
from governance.training.services import run_execute, run_start
from portal.audit.actors import Actor


class Command(BaseCommand):
    help = "Start a training run of a model (queued for a worker, or here with --wait)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="The model's slug, e.g. demand-forecasting.")
        parser.add_argument("--reason", default="Started from the command line.")
        parser.add_argument("--wait", action="store_true", help="Run here and print the steps.")
        parser.add_argument("--snapshot", default="", help="Snapshot id (default: the newest).")
        parser.add_argument(
            "--params", default="", help="JSON object of parameters, e.g. '{\"max_iter\": 200}'."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = RegisteredModel.objects.filter(slug=options["model"]).first()
        if model is None:
            known = ", ".join(RegisteredModel.objects.values_list("slug", flat=True))
            raise CommandError(f"No model {options['model']!r}. Known models: {known}.")
        try:
            params = json.loads(options["params"]) if options["params"] else None
        except json.JSONDecodeError as error:
            raise CommandError(f"--params is not JSON: {error}") from None
        reason_max = PipelineRun._meta.get_field("reason").max_length
        if len(options["reason"].strip()) > reason_max:
            raise CommandError(f"--reason is at most {reason_max} characters.")
        if params is not None and not isinstance(params, dict):
            raise CommandError("--params must be a JSON object, e.g. '{\"max_iter\": 200}'.")
        from pipelines import SnapshotNotFound, open_snapshot  # -- slow

        try:
            # The newest snapshot, or the one named: checked here, not in the worker.
            open_snapshot(
                root=settings.PIPELINES_LAKE_ROOT, snapshot_id=options["snapshot"] or None
            )
        except (SnapshotNotFound, ValueError) as error:
            what = "--snapshot" if options["snapshot"] else "Nothing to train on"
            raise CommandError(f"{what}: {error}.") from None
        try:
            run = run_start(
                model=model,
                trigger=RunTrigger.MANUAL,
                reason=options["reason"],
                params=params,
                snapshot_id=options["snapshot"],
                actor=Actor.system("cli"),
                queue=not options["wait"],
            )
        except ValidationError as error:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(m)}" for field, m in error.message_dict.items())
                if hasattr(error, "error_dict")
                else " ".join(error.messages)
            ) from None
        if not options["wait"]:
            self.stdout.write(
                f"Run #{run.pk} of {model.slug} queued (version {run.planned_version} planned)."
            )
            return
        self.stdout.write(f"Run #{run.pk} of {model.slug}, version {run.planned_version}:")
        run = run_execute(run_id=run.pk, echo=self.stdout.write)
        self.stdout.write(f"Run #{run.pk}: {run.state_label}")
        if run.state == RunState.FAILED:
            raise CommandError(run.outcome)

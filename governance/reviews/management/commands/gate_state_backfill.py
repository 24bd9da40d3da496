"""Store the gate's answers of reviews made before answers were stored."""

from django.core.management.base import BaseCommand, CommandParser

from governance.reviews.services.gates import gate_states_backfill
from portal.audit.actors import Actor


class Command(BaseCommand):
    help = (
        "Create the stored gate answer (GateState) of every version and target reviewed "
        "before answers were stored, and refresh any that differs from its reviews. "
        "Idempotent; --dry-run only reports."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report, change nothing")

    def handle(self, *args: object, **options: object) -> None:
        report = gate_states_backfill(
            actor=Actor.system("manage.py"), dry_run=bool(options["dry_run"])
        )
        verb = "would be" if report.dry_run else "were"
        self.stdout.write(f"{len(report.missing)} gate answer(s) missing {verb} created")
        for version_id, target in report.missing:
            self.stdout.write(f"  version {version_id} {target}")
        self.stdout.write(f"{len(report.stale)} stored answer(s) out of date {verb} refreshed")
        for version_id, target in report.stale:
            self.stdout.write(f"  version {version_id} {target}")

"""Send the board's failed Cloud Deploy answers again."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from governance.reviews.clouddeploy_outbox import rollout_answers_retry
from governance.reviews.models import RolloutApprovalOutbox
from portal.audit.actors import Actor

MAX_MINUTES = 366 * 24 * 60  # a year: older pending rows are long past any retry


class Command(BaseCommand):
    help = (
        "Queue the Cloud Deploy answers (RolloutApprovalOutbox rows) that failed for "
        "another round of attempts; each one reads the rollout again before sending."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="only these outbox rows")
        parser.add_argument(
            "--pending-older-than",
            type=int,
            metavar="MINUTES",
            help="also requeue rows pending and not tried for this long (their task was "
            "lost); more than the longest backoff between attempts, an hour",
        )

    def handle(self, *args: object, **options: object) -> None:
        minutes = options["pending_older_than"]
        if minutes is not None and not 0 <= minutes <= MAX_MINUTES:
            raise CommandError(f"--pending-older-than is from 0 to {MAX_MINUTES} minutes")
        ids = list(options["ids"])
        states = dict(RolloutApprovalOutbox.objects.filter(pk__in=ids).values_list("pk", "state"))
        if unknown := sorted(set(ids) - set(states)):
            raise CommandError(f"no Cloud Deploy answer with id {', '.join(map(str, unknown))}")
        queued = rollout_answers_retry(
            actor=Actor.system("manage.py"),
            ids=ids or None,
            pending_before=timezone.now() - timedelta(minutes=minutes)
            if minutes is not None
            else None,
        )
        self.stdout.write(f"queued {len(queued)} answer(s) for Cloud Deploy")
        for outbox_id in queued:
            self.stdout.write(f"  outbox {outbox_id}")
        for outbox_id in ids:
            if outbox_id not in queued:
                self.stdout.write(f"  outbox {outbox_id} not queued: it is {states[outbox_id]}")

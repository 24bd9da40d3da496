"""Create the generated sample snapshot in the lake: `manage.py lake_sample`.

The sample retail data (customers, categories, products, promotions, transactions)
the demo trains on; a second call with the same parameters finds it and does nothing.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# The generator's own floor (pipelines.sample_data): fewer rows than this cannot fill
# every category and customer segment.
MIN_TRANSACTIONS = 1000
# The generator holds every table in memory: 50 million transactions already take more
# than 12 GB, far past what a sample for a demo or a test needs.
MAX_TRANSACTIONS = 50_000_000


def transactions_checked(value: int) -> int:
    """`value` if it is a sample size the generator can make; CommandError naming the
    limits otherwise."""
    if not MIN_TRANSACTIONS <= value <= MAX_TRANSACTIONS:
        raise CommandError(
            f"--transactions must be at least {MIN_TRANSACTIONS:,} "
            f"and at most {MAX_TRANSACTIONS:,}."
        )
    return value


class Command(BaseCommand):
    help = "Write the generated sample retail data to the lake as a snapshot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--transactions",
            type=int,
            default=100_000,
            help=f"from {MIN_TRANSACTIONS:,} to {MAX_TRANSACTIONS:,}",
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        transactions_checked(options["transactions"])
        # numpy's generators take only non-negative seeds; a negative one failed deep inside.
        if options["seed"] < 0:
            raise CommandError("--seed must be 0 or more.")
        from pipelines import ensure_sample_snapshot  # -- slow

        snapshot = ensure_sample_snapshot(
            root=settings.PIPELINES_LAKE_ROOT,
            seed=options["seed"],
            n_transactions=options["transactions"],
        )
        counts = ", ".join(f"{name} {rows:,}" for name, rows in snapshot.row_counts.items())
        self.stdout.write(f"Sample snapshot {snapshot.id} ({counts})")

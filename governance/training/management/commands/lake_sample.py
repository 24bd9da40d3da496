"""Create the generated sample snapshot in the lake: `manage.py lake_sample`.

The sample retail data (customers, categories, products, promotions, transactions)
the demo trains on; a second call with the same parameters finds it and does nothing.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Write the generated sample retail data to the lake as a snapshot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--transactions", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        from pipelines import ensure_sample_snapshot  # -- slow

        snapshot = ensure_sample_snapshot(
            root=settings.PIPELINES_LAKE_ROOT,
            seed=options["seed"],
            n_transactions=options["transactions"],
        )
        counts = ", ".join(f"{name} {rows:,}" for name, rows in snapshot.row_counts.items())
        self.stdout.write(f"Sample snapshot {snapshot.id} ({counts})")

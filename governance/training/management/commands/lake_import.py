"""Import the client's files into the lake as a new snapshot:

    manage.py lake_import transactions=export.csv [customers=crm.parquet ...]
    manage.py lake_import transactions=gs://bucket/exports/tx.csv
    manage.py lake_import transactions=bq://project.dataset.sales@sales_2026_01
    manage.py lake_import transactions=dvc://https://git.example/data.git@v3:tx.parquet
        [--map InvoiceDate=ts,Qty=quantity] [--map customers:Id=customer_id]
        [--map-file mapping.yaml] [--max-rejected 0.05]

Prints the rejection report (rows rejected per reason, with a sample) and the new
snapshot's id, the data version training runs record. Refuses, storing nothing, when a
table's rejected share passes --max-rejected.
"""

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.training.clients import import_endpoints


class Command(BaseCommand):
    help = "Import CSV or Parquet files (one per table) into the lake as a new snapshot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "files",
            nargs="+",
            metavar="TABLE=SOURCE",
            help="e.g. transactions=export.csv; a source may be a path, gs://bucket/path, "
            "bq://project.dataset.table[@snapshot] or dvc://<repo>@<rev>:<path>",
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="[TABLE:]THEIRS=OURS,...",
            help="Column mapping, client name to lake name (table: transactions by default).",
        )
        parser.add_argument("--map-file", default="", help="YAML: table: {theirs: ours}.")
        parser.add_argument(
            "--max-rejected",
            type=float,
            default=None,
            help="Refuse past this share of rejected rows per table (default 0.05).",
        )
        parser.add_argument("--delimiter", default=",", help="CSV field delimiter.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from pipelines.importer import (  # -- slow
            DEFAULT_MAX_REJECTED,
            ImportFailed,
            ImportRefused,
            load_mapping_file,
            parse_mapping,
        )
        from pipelines.sources import check_source_uri, import_uris  # -- slow

        try:
            items = []
            for item in options["files"]:
                table, sep, path = item.partition("=")
                if not sep or not table or not path:
                    raise ImportFailed(f"{item!r} is not TABLE=FILE, e.g. transactions=export.csv")
                items.append((table.strip(), check_source_uri(path.strip())))
            mapping: dict[str, dict[str, str]] = {}
            if options["map_file"]:
                mapping.update(load_mapping_file(options["map_file"]))
            for text in options["map"]:
                table, sep, rest = text.partition(":")
                if not sep or "=" in table:
                    table, rest = "transactions", text
                mapping.setdefault(table.strip(), {}).update(parse_mapping(rest))
            limit = options["max_rejected"]
            result = import_uris(
                root=settings.PIPELINES_LAKE_ROOT,
                items=items,
                endpoints=import_endpoints(),
                mapping=mapping,
                max_rejected=DEFAULT_MAX_REJECTED if limit is None else limit,
                delimiter=options["delimiter"],
                progress=None if options["no_progress"] else self._progress,
            )
        except ImportRefused as refused:
            self._end_progress(options)
            for line in refused.report.lines():
                self.stdout.write(line)
            raise CommandError(str(refused)) from None
        except ImportFailed as error:
            self._end_progress(options)
            raise CommandError(str(error)) from None
        self._end_progress(options)
        for line in result.report.lines():
            self.stdout.write(line)
        state = "new snapshot" if result.created else "the lake already holds this content as"
        self.stdout.write(self.style.SUCCESS(f"Imported: {state} {result.snapshot.id}"))
        if result.snapshot.source.get("data_version"):
            self.stdout.write(f"Data version: {result.snapshot.source['data_version']}")
        self.stdout.write(
            f"Train on it: manage.py pipeline_run <model> --snapshot {result.snapshot.id}"
        )

    def _progress(self, table: str, done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = int(share * 30)
        sys.stderr.write(f"\r{table:<13} [{'#' * filled}{'.' * (30 - filled)}] {share:6.1%}")
        sys.stderr.flush()

    def _end_progress(self, options: dict[str, Any]) -> None:
        if not options["no_progress"]:
            sys.stderr.write("\n")

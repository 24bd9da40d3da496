import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.audit.checkpoints import checkpoint_document
from portal.audit.models import AuditCheckpoint
from portal.audit.services import AuditCheckpointRefused, audit_checkpoint_create


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the audit ledger (if events were appended since the last) and "
        "optionally export the latest one to a file kept outside the portal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--export", type=Path, help="write the latest checkpoint here")

    def handle(self, *args: object, **options: object) -> None:
        export = options.get("export")
        if export is not None and not export.parent.is_dir():
            # Refused before signing, so a typo in the path signs nothing.
            raise CommandError(f"cannot export to {export}: {export.parent} is not a folder")
        try:
            created = audit_checkpoint_create()
        except AuditCheckpointRefused as exc:
            raise CommandError(f"no checkpoint signed: {exc}") from exc
        latest = created or AuditCheckpoint.objects.order_by("-tree_size").first()
        if latest is None:
            raise CommandError("the ledger is empty: there is nothing to checkpoint")
        verb = "signed" if created else "unchanged, latest"
        self.stdout.write(f"checkpoint {verb}: {latest.tree_size} events, root {latest.root_hash}")
        if export is not None:
            try:
                export.write_text(json.dumps(checkpoint_document(latest), indent=2) + "\n")
            except OSError as exc:
                raise CommandError(
                    f"checkpoint {verb} but not exported to {export}: {exc.strerror}"
                ) from exc
            self.stdout.write(f"exported to {export}")

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.audit.exporting import CLOUD_LOGGING, CLOUD_LOGGING_CHECKPOINTS
from portal.audit.selectors import (
    AuditExportStatus,
    audit_checkpoint_export_status,
    audit_export_status,
)


class Command(BaseCommand):
    help = (
        "Show how far the audit ledger's copy in Cloud Logging (events and signed "
        "checkpoints) is behind the ledger; with --max-lag-seconds, exit non-zero when the "
        "oldest event or checkpoint not yet exported is older."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-lag-seconds",
            type=int,
            help="fail (exit 1) when an event or checkpoint older than this is not yet exported",
        )

    def handle(self, *args: object, **options: object) -> None:
        limit = options.get("max_lag_seconds")
        if isinstance(limit, int) and limit < 0:
            raise CommandError("--max-lag-seconds is a number of seconds, 0 or more")
        if settings.AUDIT_CLOUD_LOGGING_PROJECT:
            log = f"projects/{settings.AUDIT_CLOUD_LOGGING_PROJECT}/logs/"
            self.stdout.write(f"export: on, to {log}{settings.AUDIT_CLOUD_LOGGING_LOG}")
        else:
            self.stdout.write("export: off (AUDIT_CLOUD_LOGGING_PROJECT is empty)")
        status = audit_export_status(destination=CLOUD_LOGGING)
        self.stdout.write(f"ledger head: #{status.head_sequence}")
        self.stdout.write(f"exported up to: #{status.exported_sequence}")
        self.stdout.write(f"lag: {status.lag_events} events, {status.lag_seconds:.0f} s")
        self._cursor_lines(status)
        checkpoints = audit_checkpoint_export_status(destination=CLOUD_LOGGING_CHECKPOINTS)
        self.stdout.write(
            f"checkpoints: latest at {checkpoints.head_sequence} events, exported up to "
            f"{checkpoints.exported_sequence} events"
        )
        self.stdout.write(
            f"checkpoints lag: {checkpoints.lag_events} checkpoints, "
            f"{checkpoints.lag_seconds:.0f} s"
        )
        self._cursor_lines(checkpoints, prefix="checkpoints ")
        if isinstance(limit, int):
            for what, behind in (("export", status), ("checkpoint export", checkpoints)):
                if behind.lag_seconds > limit:
                    raise CommandError(
                        f"the {what} is {behind.lag_seconds:.0f} s behind (more than {limit} s)"
                    )

    def _cursor_lines(self, status: AuditExportStatus, *, prefix: str = "") -> None:
        oldest = status.oldest_pending_at
        if oldest is not None:
            self.stdout.write(f"{prefix}oldest not exported: {oldest.isoformat()}")
        self.stdout.write(f"{prefix}state: {status.state}, failures in a row: {status.failures}")
        if status.last_exported_at is not None:
            self.stdout.write(f"{prefix}last batch written: {status.last_exported_at.isoformat()}")
        if status.failures and status.next_attempt_at is not None:
            self.stdout.write(f"{prefix}next attempt: {status.next_attempt_at.isoformat()}")
        if status.last_error:
            self.stdout.write(f"{prefix}last error: {status.last_error}")

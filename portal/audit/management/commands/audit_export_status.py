from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.audit.exporting import CLOUD_LOGGING
from portal.audit.selectors import audit_export_status


class Command(BaseCommand):
    help = (
        "Show how far the audit ledger's copy in Cloud Logging is behind the ledger; with "
        "--max-lag-seconds, exit non-zero when the oldest event not yet exported is older."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-lag-seconds",
            type=int,
            help="fail (exit 1) when an event older than this is not yet exported",
        )

    def handle(self, *args: object, **options: object) -> None:
        if settings.AUDIT_CLOUD_LOGGING_PROJECT:
            log = f"projects/{settings.AUDIT_CLOUD_LOGGING_PROJECT}/logs/"
            self.stdout.write(f"export: on, to {log}{settings.AUDIT_CLOUD_LOGGING_LOG}")
        else:
            self.stdout.write("export: off (AUDIT_CLOUD_LOGGING_PROJECT is empty)")
        status = audit_export_status(destination=CLOUD_LOGGING)
        self.stdout.write(f"ledger head: #{status.head_sequence}")
        self.stdout.write(f"exported up to: #{status.exported_sequence}")
        self.stdout.write(f"lag: {status.lag_events} events, {status.lag_seconds:.0f} s")
        if status.oldest_pending_at is not None:
            self.stdout.write(f"oldest not exported: {status.oldest_pending_at.isoformat()}")
        self.stdout.write(f"state: {status.state}, failures in a row: {status.failures}")
        if status.last_exported_at is not None:
            self.stdout.write(f"last batch written: {status.last_exported_at.isoformat()}")
        if status.failures and status.next_attempt_at is not None:
            self.stdout.write(f"next attempt: {status.next_attempt_at.isoformat()}")
        if status.last_error:
            self.stdout.write(f"last error: {status.last_error}")
        limit = options.get("max_lag_seconds")
        if isinstance(limit, int) and status.lag_seconds > limit:
            raise CommandError(
                f"the export is {status.lag_seconds:.0f} s behind (more than {limit} s)"
            )

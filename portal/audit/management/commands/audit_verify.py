from django.core.management.base import BaseCommand, CommandError

from portal.audit.verification import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit chain; exit non-zero naming the first broken event."

    def handle(self, *args: object, **options: object) -> None:
        report = audit_chain_verify()
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))

from django.core.management.base import BaseCommand, CommandError

from governance.clients import registry_sync_enabled, vertex_registry
from governance.services.registry_sync import registry_sync
from portal.audit.actors import Actor
from worker.backends.vertex_common import VertexError


class Command(BaseCommand):
    help = "Pull the Vertex AI Model Registry (GOOGLE_CLOUD_PROJECT/REGION) into the portal."

    def handle(self, *args: object, **options: object) -> None:
        if not registry_sync_enabled():
            raise CommandError("registry sync is off: set GOOGLE_CLOUD_PROJECT (and REGION)")
        try:
            report = registry_sync(registry=vertex_registry(), actor=Actor.system("manage.py"))
        except VertexError as exc:
            raise CommandError(f"Vertex AI unavailable: {exc.reason}") from exc
        self.stdout.write(report.summary())
        for reason in report.skipped:
            self.stdout.write(f"  skipped {reason}")

"""Write the Prometheus alerting rules and the Grafana dashboard under deploy/."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring.rules import (
    DASHBOARD_PATH,
    RULES_PATH,
    alert_rules_yaml,
    grafana_dashboard_json,
)
from monitoring.selectors import monitored_models


class Command(BaseCommand):
    help = "Write deploy/prometheus/rules.yml and the Grafana dashboard from the catalogue."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--root", default=str(settings.BASE_DIR), help="project root")

    def handle(self, *args, root: str, **options) -> None:
        models = monitored_models()
        # Both texts first: a catalogue problem leaves neither file half-updated.
        files = (
            (RULES_PATH, alert_rules_yaml(models=models)),
            (DASHBOARD_PATH, grafana_dashboard_json(models=models)),
        )
        for relative, text in files:
            path = Path(root) / relative
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            except OSError as error:
                raise CommandError(f"cannot write {path}: {error.strerror}") from error
            self.stdout.write(f"wrote {relative}")

"""Run the deployment reconciler once, as the beat does every 5 minutes."""

from django.core.management.base import BaseCommand, CommandError

from monitoring.reconciler import ClusterUnavailable, ReconcilerDisabled, deployments_reconcile


class Command(BaseCommand):
    help = (
        "Read what the cluster runs (RECONCILER_KUBERNETES_API) and open an incident for "
        "every model image the board did not approve for its target; resolve those that "
        "no longer run. Exit 1 when the cluster cannot be read, 2 when unapproved images "
        "run (after recording them)."
    )

    def handle(self, *args: object, **options: object) -> None:
        try:
            report = deployments_reconcile()
        except (ReconcilerDisabled, ClusterUnavailable) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{report.images} container image(s) in governed namespaces")
        for finding in report.findings:
            self.stdout.write(
                f"  UNAPPROVED {finding.target} {finding.model} "
                f"{finding.digest or finding.images[0]} in {', '.join(finding.namespaces)} "
                f"({len(finding.pods)} pod(s))"
            )
        self.stdout.write(
            f"incidents: {len(report.opened)} opened, {len(report.refired)} fired again, "
            f"{len(report.resolved)} resolved"
        )
        if report.findings:
            raise CommandError(f"{len(report.findings)} unapproved image(s) running", returncode=2)

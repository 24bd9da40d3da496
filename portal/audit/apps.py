from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "portal.audit"
    label = "audit"
    verbose_name = "Audit ledger"

    def ready(self) -> None:
        from django.urls import reverse  # noqa: PLC0415 -- ready

        from portal.accounts.permissions import may_read_audit  # noqa: PLC0415 -- ready
        from portal.audit.reports import AUDIT_PERIOD_REPORT, audit_period_report_produce  # noqa: PLC0415 -- ready
        from portal.exports.registry import ExportKind, export_kind_register  # noqa: PLC0415 -- ready

        export_kind_register(
            ExportKind(
                name=AUDIT_PERIOD_REPORT,
                label="Audit report of a period (PDF)",
                produce=audit_period_report_produce,
                may_read=lambda user, params: bool(may_read_audit(user)),
                source_url=lambda params: reverse("audit:event_list"),
            )
        )

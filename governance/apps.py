from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance.exports import register_export_kinds  # noqa: PLC0415 -- ready

        register_export_kinds()

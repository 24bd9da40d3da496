from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # The evidence pack (governance.reviews, below) prints what monitoring hands it.
        from monitoring.evidence import register_monitoring_evidence  # noqa: PLC0415 -- ready

        register_monitoring_evidence()

        # The portal's home page knows no app: this one says what waits there.
        from monitoring.home import register_home_panels  # noqa: PLC0415 -- ready

        register_home_panels()

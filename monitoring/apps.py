from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from governance.training.signals import version_trained  # noqa: PLC0415 -- ready
        from monitoring.exporter import EvaluationCollector  # noqa: PLC0415 -- ready
        from monitoring.receivers import on_version_trained  # noqa: PLC0415 -- ready
        from portal.health.metrics import collector_register  # noqa: PLC0415 -- ready

        version_trained.connect(on_version_trained, dispatch_uid="monitoring.version_trained")
        collector_register(name="monitoring.evaluations", collector=EvaluationCollector())

        # The evidence pack (governance.reviews, below) prints what monitoring hands it.
        from monitoring.evidence import register_monitoring_evidence  # noqa: PLC0415 -- ready

        register_monitoring_evidence()

        # The portal's home page knows no app: this one says what waits there.
        from monitoring.home import register_home_panels  # noqa: PLC0415 -- ready

        register_home_panels()

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # A rollback of a rollout opens an incident here; governance.rollouts announces
        # it through its signal and knows nothing of monitoring (docs/architecture.md).
        from governance.rollouts.signals import rollout_rolled_back  # noqa: PLC0415 -- ready
        from monitoring.receivers import rollout_rolled_back_receive  # noqa: PLC0415 -- ready

        rollout_rolled_back.connect(
            rollout_rolled_back_receive, dispatch_uid="monitoring.rollout_rolled_back"
        )

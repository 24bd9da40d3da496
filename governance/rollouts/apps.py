from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "governance.rollouts"
    label = "rollouts"
    verbose_name = "Rollouts"

    def ready(self) -> None:
        # The evidence pack (governance.reviews, below) prints what rollouts hand it.
        from governance.rollouts.evidence import register_rollouts_evidence  # noqa: PLC0415 -- ready

        register_rollouts_evidence()

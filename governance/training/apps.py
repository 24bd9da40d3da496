from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "governance.training"
    label = "training"
    verbose_name = "Training runs"

    def ready(self) -> None:
        from governance.training.timeline import version_runs
        from portal.audit.timeline import timeline_related_register

        timeline_related_register("model_version", version_runs)

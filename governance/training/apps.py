from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "governance.training"
    label = "training"
    verbose_name = "Training runs"

    def ready(self) -> None:
        # Training hands its like-for-like comparison to the registry's readers (the
        # review checks, the version page) without those reading training's tables.
        from governance.selectors.baselines import baseline_provider_register  # noqa: PLC0415 -- ready
        from governance.training.selectors import production_rescored  # noqa: PLC0415 -- ready

        baseline_provider_register(production_rescored)

        from governance.training.timeline import version_runs  # noqa: PLC0415 -- ready
        from portal.audit.timeline import timeline_related_register  # noqa: PLC0415 -- ready

        timeline_related_register("model_version", version_runs)

        from governance.training.home import register_home_panels  # noqa: PLC0415 -- ready

        register_home_panels()

from django.apps import AppConfig


class ChangesConfig(AppConfig):
    name = "portal.changes"
    label = "changes"
    verbose_name = "Governance change requests"

    def ready(self) -> None:
        from portal.changes import configuration  # noqa: F401, PLC0415 -- ready (registers its change kinds)

from django.apps import AppConfig


class DataSubjectsConfig(AppConfig):
    name = "datasubjects"
    verbose_name = "Data subjects"

    def ready(self) -> None:
        # The portal's home page knows no app: this one says what waits there.
        from datasubjects.home import register_home_panels  # noqa: PLC0415 -- ready

        register_home_panels()

from django.apps import AppConfig


class DataSubjectsConfig(AppConfig):
    name = "datasubjects"
    verbose_name = "Data subjects"

    def ready(self) -> None:
        # The portal's export jobs know no app: offer a request's evidence pack there.
        from datasubjects.evidence import register_request_evidence_pack  # noqa: PLC0415 -- ready

        register_request_evidence_pack()

from django.apps import AppConfig


class DataSubjectsConfig(AppConfig):
    name = "datasubjects"
    verbose_name = "Data subjects"

    def ready(self) -> None:
        # Governance (below) asks for the suppression list when a training run takes
        # its snapshot, and for the flags of a version's page, without importing us.
        from datasubjects.hooks import (  # noqa: PLC0415 -- ready
            training_suppression_list_write,
            version_erasure_flags,
        )
        from datasubjects.pseudonyms import suppression_key  # noqa: PLC0415 -- ready
        from governance.selectors.data_subjects import (  # noqa: PLC0415 -- ready
            version_subject_flag_provider_register,
        )
        from governance.services.data_subjects import (  # noqa: PLC0415 -- ready
            training_suppression_key_register,
            training_suppression_writer_register,
        )

        training_suppression_writer_register(training_suppression_list_write)
        training_suppression_key_register(suppression_key)
        version_subject_flag_provider_register(version_erasure_flags)

        # The portal's export jobs know no app: offer a request's evidence pack there.
        from datasubjects.evidence import register_request_evidence_pack  # noqa: PLC0415 -- ready

        register_request_evidence_pack()

        # The portal's home page knows no app: this one says what waits there.
        from datasubjects.home import register_home_panels  # noqa: PLC0415 -- ready

        register_home_panels()

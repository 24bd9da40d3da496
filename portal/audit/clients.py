"""Adapters to outside systems the ledger writes to, built from settings."""

from django.conf import settings

from worker.backends.cloudlogging import CloudLoggingWriter


def cloud_logging_writer() -> CloudLoggingWriter | None:
    """The writer of the ledger's Cloud Logging copy, or None when the export is off
    (AUDIT_CLOUD_LOGGING_PROJECT empty). Raises LoggingUnavailable when Google
    credentials cannot be found."""
    if not settings.AUDIT_CLOUD_LOGGING_PROJECT:
        return None
    return CloudLoggingWriter(
        project=settings.AUDIT_CLOUD_LOGGING_PROJECT,
        log_name=settings.AUDIT_CLOUD_LOGGING_LOG,
        api_endpoint=settings.CLOUD_LOGGING_API_ENDPOINT or None,
    )

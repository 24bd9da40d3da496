"""Logging filters that keep the log to what matters."""

import logging


class ClientErrorWithoutTraceback(logging.Filter):
    """A refused request (a 4xx such as 403) is logged as one line: the traceback of
    the PermissionDenied that produced it says nothing an operator needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True

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


class PoolWorkerStoppedIsInformation(logging.Filter):
    """Celery's pool reports each worker process that ended on SIGTERM as an error.
    When the worker is stopped (Ctrl-C in the demo, a pod's shutdown), the process
    manager sends SIGTERM to the pool's processes too: an expected stop, so the line is
    information. Any other exit (a crash, SIGKILL by the out-of-memory killer) stays an
    error."""

    STOPPED = "signal 15 (SIGTERM)"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and self.STOPPED in str(record.args or ""):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


class AnswersNotRefusals(logging.Filter):
    """Drops Django's "Forbidden" warning for a 403 that is an answer, not a refusal of
    the caller: the deployment gate's "not yet" (the view marks the request with
    `refusal_is_answer`). CI polls the gate while the board decides, and each poll
    would otherwise be one warning line. Refusals of the caller (a token without the
    scope, a person without the role) are not marked and are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not getattr(request, "refusal_is_answer", False)

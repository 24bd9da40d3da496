"""The log keeps to what matters: a refused request is one line, printed once; a
worker's printed e-mail is information; kombu's hostname notice is silent on the
filesystem broker."""

import io
import logging
import logging.config

import pytest
from django.conf import settings
from django.test import override_settings

from portal.accounts.choices import Role
from worker.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture()
def portal_log():
    """The portal's logging config with its console handler writing to a buffer."""
    stream = io.StringIO()
    config = {**settings.LOGGING, "handlers": {**settings.LOGGING["handlers"]}}
    config["handlers"]["console"] = {**config["handlers"]["console"], "stream": stream}
    logging.config.dictConfig(config)
    yield stream
    logging.config.dictConfig(settings.LOGGING)


@override_settings(DEBUG=True)
def test_refused_request_logs_one_line_without_traceback(client_for, make_user, portal_log):
    """A 403 is logged once, as a warning, without the PermissionDenied traceback."""
    response = client_for(make_user(Role.AUDITOR)).get("/manage/users/")
    assert response.status_code == 403
    log = portal_log.getvalue()
    assert log.count("Forbidden") == 1
    assert "Traceback" not in log


def test_worker_prints_at_info_and_kombu_hostname_notice_is_silent():
    """The console e-mail backend's output is logged at INFO by the worker, and the
    filesystem broker's "No hostname was supplied" warning is not shown."""
    assert app.conf.worker_redirect_stdouts_level == "INFO"
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert not logging.getLogger("kombu.connection").isEnabledFor(logging.WARNING)


def test_pool_worker_stopped_by_sigterm_is_information_not_an_error():
    """Ctrl-C in the demo stops the pool's processes with SIGTERM: billiard's "exited
    with 'signal 15 (SIGTERM)'" is logged at INFO; a crash's exit stays an ERROR."""
    from billiard.common import human_status

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    pool_log = logging.getLogger("multiprocessing")
    pool_log.addHandler(handler)
    try:
        for status in (-15, -11):
            pool_log.error(
                "Process %r pid:%r exited with %r", "ForkPoolWorker-1", 4242, human_status(status)
            )
    finally:
        pool_log.removeHandler(handler)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("INFO", "Process 'ForkPoolWorker-1' pid:4242 exited with 'signal 15 (SIGTERM)'"),
        ("ERROR", "Process 'ForkPoolWorker-1' pid:4242 exited with 'signal 11 (SIGSEGV)'"),
    ]

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

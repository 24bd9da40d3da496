"""Fixtures for notifications: a real webhook receiver, endpoints, eager Celery."""

import socket

import pytest

from portal.audit.actors import Actor
from portal.notify.services import webhook_endpoint_create
from tests.portal.notify.receiver import WebhookReceiver

SECRET = "whsec_test-secret-0123456789abcdef"


@pytest.fixture()
def receiver():
    """A started WebhookReceiver checking signatures under SECRET."""
    server = WebhookReceiver(SECRET).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def local_receivers_allowed(settings):
    """The test receivers listen on 127.0.0.1, which webhooks refuse by default."""
    settings.WEBHOOK_PRIVATE_HOSTS = ["127.0.0.1"]


@pytest.fixture(autouse=True)
def eager_tasks():
    """Queued tasks run at once, in the test's thread (what a worker would do later), so
    no test leaves messages in a broker."""
    from worker.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture()
def endpoint(db, receiver):
    """endpoint(format="json", events=[...], url=None, name="board") -> WebhookEndpoint"""

    def make(format="json", events=("review.opened", "review.decided", "review.expired"), **kw):
        return webhook_endpoint_create(
            name=kw.get("name", "board channel"),
            url=kw.get("url") or receiver.url,
            format=format,
            event_types=list(events),
            secret=kw.get("secret", SECRET),
            created_by=None,
            actor=Actor.system("tests"),
        ).endpoint

    return make


@pytest.fixture()
def closed_port():
    """A local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""Shared fixtures.

Services: tests marked `postgres` or `redis` are skipped, with the reason shown, when
the service is not there; with PORTAL_REQUIRE_SERVICES=1 (as in CI) they fail instead.
"""

import os
import shutil
import socket

import pytest
from django.core.cache import cache
from django.db import connection

from portal.accounts.choices import Role
from tests.factories import UserFactory
from worker.celery import app as celery_app

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"

# Tasks that tests queue on commit go to an in-memory broker, not to the demo's broker
# folder under var/ where a demo worker would pick them up. Tests that need a real
# worker start one on Redis explicitly.
celery_app.conf.broker_url = "memory://"
PROMETHEUS_BINARY = "/usr/bin/prometheus"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PORTAL_REQUIRE_SERVICES=1: nothing may be skipped)")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL or run one on 127.0.0.1:5432")
    if item.get_closest_marker("redis") and not _port_open("127.0.0.1", 6379):
        _missing("needs Redis on 127.0.0.1:6379")
    if item.get_closest_marker("browser") and not os.path.exists("/usr/bin/chromium"):
        _missing("needs Debian's Chromium at /usr/bin/chromium")
    if item.get_closest_marker("prometheus") and not (
        os.path.exists(PROMETHEUS_BINARY) and _prometheus_binaries()
    ):
        _missing(
            "needs prometheus, promtool and alertmanager on the PATH "
            "(apt-get install prometheus prometheus-alertmanager)"
        )


def _prometheus_binaries() -> bool:
    alertmanager = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    return bool(shutil.which("prometheus") and shutil.which("promtool") and alertmanager)


# --- the append-only ledger and pytest-django's flush ----------------------------------
# Transactional tests end with a TRUNCATE of every table, which the ledger's triggers
# refuse on PostgreSQL. For that one flush the connection switches triggers off
# (session_replication_role = replica, the superuser switch the tests run as); every
# test that uses the database starts with triggers switched back on.


def _is_transactional(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and (
        marker.kwargs.get("transaction") or (marker.args and marker.args[0])
    ):
        return True
    return "transactional_db" in request.fixturenames


@pytest.fixture(autouse=True)
def _ledger_flushable(request: pytest.FixtureRequest) -> object:
    if not _is_transactional(request):
        yield
        return
    # Set up the database first, so this teardown runs before pytest-django's flush.
    request.getfixturevalue("_django_db_helper")
    yield
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")


@pytest.fixture(autouse=True)
def _audit_triggers_armed(request: pytest.FixtureRequest, django_db_blocker: object) -> None:
    if connection.vendor == "postgresql" and connection.connection is not None:
        with django_db_blocker.unblock(), connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SET session_replication_role = DEFAULT")


# --- people ------------------------------------------------------------------------------


@pytest.fixture()
def make_user(db: None):
    def make(*roles: str, **kwargs: object):
        return UserFactory(roles=list(roles), **kwargs)

    return make


@pytest.fixture()
def admin_user(make_user):
    return make_user(Role.PORTAL_ADMIN)


@pytest.fixture()
def auditor(make_user):
    return make_user(Role.AUDITOR)


@pytest.fixture()
def devops(make_user):
    return make_user(Role.DEVOPS)


@pytest.fixture()
def outsider(make_user):
    """Signed in, holds no role."""
    return make_user()


@pytest.fixture()
def client_for(client):
    def signed_in(user):
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return signed_in


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # Rate limits count in the cache: one test's refusals must not limit the next.
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: object) -> None:
    # PBKDF2's deliberate slowness protects real passwords, not test fixtures.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]

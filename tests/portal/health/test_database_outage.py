"""A database that is briefly away (a restart, a Cloud SQL failover) answers 503 with
Retry-After, never 500; a connection the server closed is replaced before use."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import Client, RequestFactory

from portal.accounts.choices import Role
from portal.apitokens.services import apitoken_create
from portal.audit.actors import Actor

pytestmark = pytest.mark.postgres


def _wsgi_get(path: str, **headers: str) -> tuple[int, dict[str, str]]:
    """A GET through Django's WSGI handler, as gunicorn serves it: with the request
    signals that let Django close or check a reused connection (the test client
    switches those off)."""
    environ = RequestFactory().get(path, **headers).environ
    answer: dict = {}

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    result = WSGIHandler()(environ, start_response)
    try:
        b"".join(result)
    finally:
        result.close()
    return answer["status"], answer["headers"]


def _terminate(backend_pid: int) -> None:
    params = connection.get_connection_params()
    with psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        password=params.get("password"),
        dbname=params["dbname"],
        autocommit=True,
    ) as other:
        # The timeout makes the call wait until the backend has really gone.
        terminated = other.execute("SELECT pg_terminate_backend(%s, 5000)", [backend_pid])
        assert terminated.fetchone() == (True,)


@pytest.mark.django_db(transaction=True)
def test_connection_the_server_closed_is_replaced_before_the_next_request(make_user):
    """The server terminates the portal's idle connection (what a restart does): the
    next request checks it, opens a new one and succeeds."""
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
    secret = apitoken_create(
        name="ci",
        owner=make_user(Role.DEVOPS),
        scopes=["gates:read"],
        expires_at=None,
        actor=Actor.system("tests"),
    ).secret
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert _wsgi_get("/api/v1/whoami", **auth)[0] == 200
    backend = connection.connection.info.backend_pid

    _terminate(backend)
    status, _ = _wsgi_get("/api/v1/whoami", **auth)

    assert status == 200
    assert connection.connection.info.backend_pid != backend


@contextmanager
def _database_unreachable(django_db_blocker: object) -> Iterator[None]:
    """Point the connection at a port nothing listens on, for the duration."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    original = dict(connection.settings_dict)
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port))
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.update(original)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/gates/demand-forecasting/1.0.0/production", "/api/v1/whoami"],
)
def test_api_answers_503_with_retry_after_while_the_database_is_away(django_db_blocker, path):
    """An API call that needs the database while it is away: 503, Retry-After, and the
    JSON error shape, not a 500."""
    client = Client(raise_request_exception=False)
    with _database_unreachable(django_db_blocker):
        response = client.get(path, HTTP_AUTHORIZATION="Bearer gp_abcd1234_secret")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "error": "The database is briefly unavailable; try again shortly.",
        "fields": {},
    }


def test_hook_answers_503_while_the_database_is_away(django_db_blocker):
    """Pub/Sub reads 503 as "deliver again later": a push while the database is away
    is redelivered, not lost."""
    client = Client(raise_request_exception=False)
    with _database_unreachable(django_db_blocker):
        response = client.post("/hooks/clouddeploy", data=b"{}", content_type="application/json")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["fields"] == {}


def test_pages_answer_the_503_page_while_the_database_is_away(django_db_blocker):
    """A signed-in page while the database is away: the 503 page, with Retry-After."""
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "x" * 32
    with _database_unreachable(django_db_blocker):
        response = client.get("/reviews/")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "cannot reach its database" in response.content.decode()


def test_refusal_stands_when_it_cannot_be_recorded(django_db_blocker):
    """A refused write while the database is away: the refusal (401) is still the
    answer, although it could not be counted."""
    client = Client(raise_request_exception=False)
    with _database_unreachable(django_db_blocker):
        response = client.post("/api/v1/reviews", {}, content_type="application/json")

    assert response.status_code == 401
    assert response.json()["fields"] == {}

"""`GET /metrics`: django-prometheus's metrics, plus the collectors apps register.

django-prometheus serves the process's default registry, or with
PROMETHEUS_MULTIPROC_DIR set (gunicorn's several workers) a registry rebuilt from the
workers' files, which would leave out any collector an app registered in-process. Apps
that export figures read from the database at scrape time (monitoring's quality and
drift gauges) register a collector here in their AppConfig.ready(); the portal's base
knows no app. Such a collector reads the database, so it answers the same on every pod
and worker; one that fails yields nothing rather than failing the scrape.
"""

import hmac
import logging
import os
from collections.abc import Iterator

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import multiprocess
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)
_APP_REGISTRY = prometheus_client.CollectorRegistry(auto_describe=False)
_REGISTERED: set[str] = set()


class _Guarded(Collector):
    """An app's collector whose failure (a database away) empties its part only."""

    def __init__(self, name: str, collector: Collector) -> None:
        self.name = name
        self.collector = collector

    def collect(self) -> Iterator:
        try:
            families = list(self.collector.collect())
        except Exception:  # a scrape must not fail for one app's figures
            logger.exception("metrics collector %s failed", self.name)
            return iter(())
        return iter(families)

    def describe(self) -> list:
        return []  # described lazily: collecting at registration would read the database


def collector_register(*, name: str, collector: Collector) -> None:
    """Serve `collector`'s metrics on /metrics too; once per name (ready() may run
    more than once in tests)."""
    if name in _REGISTERED:
        return
    _REGISTERED.add(name)
    _APP_REGISTRY.register(_Guarded(name, collector))


def _bearer_ok(header: str | None, expected: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return (
        scheme.lower() == "bearer"
        and bool(token)
        and hmac.compare_digest(token.strip().encode(), expected.encode())
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text page. With METRICS_BEARER_TOKEN set, a request without that
    bearer token is a 401 with the JSON error shape (the page names models, versions and
    their quality and drift figures)."""
    expected = settings.METRICS_BEARER_TOKEN
    if expected and not _bearer_ok(request.headers.get("Authorization"), expected):
        response = JsonResponse(
            {"error": "The metrics need Prometheus's bearer token.", "fields": {}}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    page = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(
        _APP_REGISTRY
    )
    return HttpResponse(page, content_type=prometheus_client.CONTENT_TYPE_LATEST)

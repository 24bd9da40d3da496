"""A small client of Prometheus's HTTP API (`query_range`), with a short cache.

The dashboards ask the same queries for the same window again and again (a page
reloaded, several people paged at once), so answers are cached for
MONITORING_CACHE_SECONDS in the shared cache, keyed by the query and the window
rounded to the step: a cache every web pod shares, no state in process memory.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

import requests
from django.conf import settings
from django.core.cache import cache


class PrometheusUnavailable(Exception):
    """Prometheus could not be reached or refused the query; the message says which."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    times: list[float]  # unix seconds
    values: list[float]


def _cache_key(query: str, start: int, end: int, step: int) -> str:
    digest = hashlib.sha256(f"{query}|{start}|{end}|{step}".encode()).hexdigest()
    return f"prom:range:{digest}"


def query_range(*, query: str, start: datetime, end: datetime, step: int) -> list[Series]:
    """The series of a PromQL query between two times at `step` seconds.

    Start and end are rounded down to the step, so views a few seconds apart share the
    cached answer. Raises PrometheusUnavailable when Prometheus is down, times out or
    answers with an error.
    """
    start_s = int(start.timestamp()) // step * step
    end_s = int(end.timestamp()) // step * step
    key = _cache_key(query, start_s, end_s, step)
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        response = requests.get(
            f"{settings.PROMETHEUS_URL}/api/v1/query_range",
            params={"query": query, "start": start_s, "end": end_s, "step": step},
            timeout=settings.PROMETHEUS_TIMEOUT_SECONDS,
        )
        body = response.json()
    except (requests.RequestException, ValueError) as error:
        raise PrometheusUnavailable(
            f"Prometheus at {settings.PROMETHEUS_URL} cannot be reached ({type(error).__name__})."
        ) from None
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusUnavailable(
            f"Prometheus refused the query: {body.get('error', response.status_code)}"
        )
    series = [
        Series(
            labels=item.get("metric", {}),
            times=[float(t) for t, _ in item.get("values", [])],
            values=[float(v) for _, v in item.get("values", [])],
        )
        for item in body.get("data", {}).get("result", [])
    ]
    cache.set(key, series, settings.MONITORING_CACHE_SECONDS)
    return series

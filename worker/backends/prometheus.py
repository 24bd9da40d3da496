"""A small reader of Prometheus's HTTP API (instant queries)."""

import math

import requests


class PrometheusError(Exception):
    """Prometheus did not answer, or answered with an error."""


class PrometheusReader:
    def __init__(self, *, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """The instant vector of `promql` now: (labels, value) per series; NaN values
        (a ratio over no traffic) are left out."""
        try:
            answer = requests.get(
                f"{self.url}/api/v1/query", params={"query": promql}, timeout=self.timeout
            )
            body = answer.json()
        except (requests.RequestException, ValueError) as error:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {error}") from None
        if answer.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused {promql!r}: {body.get('error', body)}")
        out = []
        for series in body["data"]["result"]:
            value = float(series["value"][1])
            if math.isfinite(value):
                out.append((series["metric"], value))
        return out

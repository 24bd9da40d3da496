"""Canary analysis against a stand-in of Prometheus's query API (its JSON wire format):
no traffic is never a pass whatever a threshold says, a missing latency is
inconclusive, and p95 and p99 have their own limits."""

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from governance.rollouts.analysis import canary_analyse
from governance.rollouts.choices import AnalysisResult
from tests.fakes.json_http import JsonHttpFake
from worker.backends.prometheus import PrometheusReader


@dataclass
class FakePrometheus(JsonHttpFake):
    """Answers `/api/v1/query` with one value per track and measure, as Prometheus's
    instant vector; None leaves the series out (no data)."""

    values: dict[str, dict[str, float | None]] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)
    _failures: list[Any] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def _measure(self, query: str) -> str:
        if 'outcome="error"' in query:
            return "errors"
        if "histogram_quantile(0.95" in query:
            return "p95"
        if "histogram_quantile(0.99" in query:
            return "p99"
        if "serving_prediction_sum" in query:
            return "mean"
        return "requests"

    def handle(self, method: str, raw_path: str, headers: dict, raw_body: bytes) -> tuple:
        query = parse_qs(urlsplit(raw_path).query)["query"][0]
        track = re.search(r'track="(\w+)"', query)[1]
        value = self.values[track].get(self._measure(query))
        result = [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}


def track(**overrides: float | None) -> dict[str, float | None]:
    return {"requests": 200, "errors": 0, "p95": 0.010, "p99": 0.020, "mean": 3.0, **overrides}


def analyse(fake: FakePrometheus, **thresholds: float):
    return canary_analyse(
        reader=PrometheusReader(url=fake.url),
        model="demand-forecasting",
        stable_version="2.0.0",
        canary_version="2.1.0",
        window_seconds=60,
        thresholds=thresholds,
    )


@pytest.fixture()
def fake():
    with FakePrometheus() as server:
        yield server


def test_no_traffic_is_inconclusive_even_with_a_zero_minimum(fake):
    fake.values = {"stable": track(), "canary": track(requests=0)}
    analysis = analyse(fake, min_requests=0)
    assert analysis.result == AnalysisResult.INCONCLUSIVE
    assert analysis.reasons == ["too little traffic: canary: 0.0 requests, fewer than 1"]


def test_missing_latency_is_inconclusive(fake):
    fake.values = {"stable": track(), "canary": track(p99=None)}
    analysis = analyse(fake)
    assert analysis.result == AnalysisResult.INCONCLUSIVE
    assert analysis.reasons == ["no data: canary: no p99 latency"]


def test_p99_has_its_own_limit(fake):
    """p99 three times stable's fails a 2x p99 limit though p95 is within its 4x."""
    fake.values = {"stable": track(), "canary": track(p95=0.030, p99=0.060)}
    analysis = analyse(fake, max_p95_latency_ratio=4, max_p99_latency_ratio=2)
    assert analysis.result == AnalysisResult.FAIL
    assert analysis.reasons == ["p99 latency 60.0 ms against 20.0 ms stable"]
    fake.values = {"stable": track(), "canary": track(p95=0.030, p99=0.030)}
    assert analyse(fake, max_p95_latency_ratio=4, max_p99_latency_ratio=2).result == "pass"


def test_error_rate_and_prediction_shift_fail(fake):
    fake.values = {"stable": track(), "canary": track(errors=20, mean=4.5)}
    analysis = analyse(fake, max_error_rate_increase=0.05, max_prediction_shift=0.25)
    assert analysis.result == AnalysisResult.FAIL
    assert analysis.reasons == [
        "error rate 10.00% against 0.00% stable",
        "predictions shifted by 50% from the stable version's",
    ]
    assert json.dumps(analysis.to_dict())  # stored as the step's JSON


def test_prometheus_down_is_inconclusive():
    analysis = canary_analyse(
        reader=PrometheusReader(url="http://127.0.0.1:9", timeout=1),
        model="demand-forecasting",
        stable_version="2.0.0",
        canary_version="2.1.0",
        window_seconds=60,
    )
    assert analysis.result == AnalysisResult.INCONCLUSIVE
    assert "did not answer" in analysis.reasons[0]

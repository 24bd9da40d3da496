"""The prediction log: one JSON line per answered prediction, per model and UTC day,
joined later by request id (quality jobs) and customer id (data subject requests);
losing lines is counted, never a failed prediction."""

import json
import re
import subprocess
import time
from datetime import UTC, datetime

import pytest
import requests
from prometheus_client import CollectorRegistry

from serving.prediction_log import PredictionLog, log_path
from serving.routing import routing_write
from tests.serving.conftest import SLUGS, start_server

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture()
def logged_server(trained_versions, tmp_path):
    routing_path = tmp_path / "routing.json"
    routing_write(routing_path, trained_versions.routing())
    log_dir = tmp_path / "predictions"
    server = start_server(routing_path, prediction_log_dir=log_dir)
    yield server, log_dir
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def _lines(log_dir, slug):
    path = log_path(log_dir, slug, datetime.now(UTC))
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_for_lines(log_dir, slug, count, server_url):
    # The log is written off the request path: poll the server's own counter of lines
    # written, the same signal an operator watches, until it reaches the count.
    for _ in range(200):
        text = requests.get(f"{server_url}/metrics", timeout=10).text
        match = re.search(
            rf'serving_prediction_log_lines_total{{model="{slug}"}} (\d+(?:\.\d+)?)', text
        )
        if match and float(match.group(1)) >= count:
            return _lines(log_dir, slug)
        time.sleep(0.05)  # polling a real server process, not waiting for time to pass
    raise AssertionError(f"{slug}: fewer than {count} log lines written")


@pytest.mark.parametrize("slug", list(SLUGS.values()))
def test_prediction_log_writes_one_line_per_answer(logged_server, sample_request, slug):
    """An answered prediction is one line in <dir>/<model>/<UTC day>.jsonl carrying the
    response's request id, the version and track that answered, the key, the customer
    id (null for forecasts), the validated inputs and the prediction; a refused request
    (422) writes nothing."""
    server, log_dir = logged_server
    url = f"{server.url}/v1/models/{slug}/predict"
    answer = requests.post(url, json=sample_request(slug, 4), timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert answer.headers["X-Request-ID"] == body["request_id"]
    refused = requests.post(url, json={"nonsense": True}, timeout=10)
    assert refused.status_code == 422

    (line,) = _wait_for_lines(log_dir, slug, 1, server.url)
    assert set(line) == {
        "ts",
        "request_id",
        "model",
        "version",
        "track",
        "key",
        "customer_id",
        "inputs",
        "prediction",
    }
    assert RFC3339_UTC.match(line["ts"])
    assert (line["request_id"], line["model"], line["version"], line["track"]) == (
        body["request_id"],
        slug,
        "1.0.0",
        "stable",
    )
    request = sample_request(slug, 4)
    if slug == "demand-forecasting":
        assert line["customer_id"] is None
        assert line["key"] == f"{request['category_id']}/{request['store_id']}"
        assert line["inputs"]["level_28"] == request["level_28"]
        assert line["prediction"] == {"forecast": body["forecast"]}
    elif slug == "customer-segmentation":
        assert line["customer_id"] == line["key"] == request["customer_id"]
        assert line["inputs"]["features"]["monetary"] == request["features"]["monetary"]
        assert line["prediction"] == {"segment": body["segment"]}
    else:
        assert line["customer_id"] == request["customer_id"]
        assert [p["product_id"] for p in line["inputs"]["history"]] == [
            p["product_id"] for p in request["history"]
        ]
        assert line["prediction"] == {"items": body["items"]}


def test_prediction_log_unwritable_folder_counts_failures_and_still_answers(
    trained_versions, tmp_path, sample_request
):
    """When the log cannot be written (its folder is a file), predictions still answer
    200 and the lost lines are counted by reason."""
    routing_path = tmp_path / "routing.json"
    routing_write(routing_path, trained_versions.routing())
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    server = start_server(routing_path, prediction_log_dir=blocked)
    try:
        slug = "customer-segmentation"
        for n in range(3):
            answer = requests.post(
                f"{server.url}/v1/models/{slug}/predict", json=sample_request(slug, n), timeout=10
            )
            assert answer.status_code == 200
        pattern = re.compile(
            r'serving_prediction_log_failures_total{model="customer-segmentation",'
            r'reason="write_error"} (\d+(?:\.\d+)?)'
        )
        for _ in range(200):
            match = pattern.search(requests.get(f"{server.url}/metrics", timeout=10).text)
            if match and float(match.group(1)) == 3:
                break
            time.sleep(0.05)  # polling a real server process, not waiting for time to pass
        else:
            raise AssertionError("the three lost lines were not counted")
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


def test_prediction_log_full_queue_drops_and_counts(tmp_path):
    """A queue that is full (the writer far behind) drops the new line at once and
    counts it; the lines already queued are written when the writer runs."""
    registry = CollectorRegistry()
    log = PredictionLog(tmp_path, registry, max_lines=2)
    now = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    for n in range(3):
        log.append(
            ts=now,
            request_id=f"{n:032x}",
            model="demand-forecasting",
            version="1.0.0",
            track="stable",
            key="c/s",
            customer_id=None,
            inputs={"level_28": n},
            prediction={"forecast": []},
        )
    labels = {"model": "demand-forecasting", "reason": "queue_full"}
    assert registry.get_sample_value("serving_prediction_log_failures_total", labels) == 1
    log.start()
    assert log.flush(timeout=10)
    log.stop()
    lines = (tmp_path / "demand-forecasting" / "2026-03-01.jsonl").read_text().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"{n:032x}" for n in range(2)]
    assert json.loads(lines[0])["ts"] == "2026-03-01T23:59:59.000000Z"

"""The model server honours the portal's suppression list: a listed customer gets the
default segment and the most popular products, nobody else is affected, and a change
of the file is picked up while the server runs."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from pipelines.artifacts import load_artifact
from pipelines.suppression import customer_key, suppression_write
from serving.predictors import DEFAULT_SEGMENT
from serving.routing import routing_write
from tests.serving.conftest import ROOT, start_server

KEY = b"s" * 32
LISTED = "C000001"


def _write(path, purposes):
    suppression_write(
        path,
        key=KEY,
        purposes={p: [customer_key(KEY, LISTED)] for p in purposes},
        written_at="2026-11-29T00:00:00+00:00",
    )


@pytest.fixture()
def suppressed_server(trained_versions, tmp_path, monkeypatch):
    monkeypatch.setenv("DSAR_SUPPRESSION_KEY", KEY.hex())
    routing_path = tmp_path / "routing.json"
    routing_write(routing_path, trained_versions.routing())
    listing = tmp_path / "suppression.json"
    _write(listing, ["training", "profiling", "personalisation"])
    server = start_server(routing_path, suppression_list=listing)
    yield server, listing
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def _post(server, slug, body):
    answer = requests.post(f"{server.url}/v1/models/{slug}/predict", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_listed_customer_gets_the_default_answers(
    suppressed_server, sample_request, trained_versions
):
    server, _ = suppressed_server
    listed = _post(server, "customer-segmentation", sample_request("customer-segmentation", 1))
    assert (listed["segment"], listed["personalised"]) == (DEFAULT_SEGMENT, False)
    other = _post(server, "customer-segmentation", sample_request("customer-segmentation", 2))
    assert other["segment"] >= 0 and "personalised" not in other
    recommender = load_artifact(trained_versions.artifacts["product-recommendation"]["1.0.0"]).model
    popular = [
        str(recommender.products[p])
        for p in np.argsort(-np.asarray(recommender.popularity), kind="stable")[:5]
    ]
    body = _post(server, "product-recommendation", sample_request("product-recommendation", 1))
    assert (body["items"], body["personalised"]) == (popular, False)


def test_a_changed_list_is_picked_up_while_serving(suppressed_server, sample_request):
    """Lifted for profiling only: segmented again, still not personalised."""
    server, listing = suppressed_server
    _write(listing, ["personalisation"])
    deadline = time.monotonic() + 30
    segment = DEFAULT_SEGMENT
    while time.monotonic() < deadline and segment == DEFAULT_SEGMENT:
        segment = _post(
            server, "customer-segmentation", sample_request("customer-segmentation", 1)
        )["segment"]
        time.sleep(0.2)
    assert segment >= 0
    body = _post(server, "product-recommendation", sample_request("product-recommendation", 1))
    assert body["personalised"] is False


def test_a_server_given_a_list_but_no_key_refuses_to_start(tmp_path):
    """Without the list's hashing key the server would answer as if nobody were
    listed: it stops at once, naming the variable to set."""
    _write(tmp_path / "suppression.json", ["profiling"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSAR_SUPPRESSION_KEY")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving",
            "--routing",
            str(tmp_path / "routing.json"),
            "--suppression-list",
            str(tmp_path / "suppression.json"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "DSAR_SUPPRESSION_KEY" in done.stderr

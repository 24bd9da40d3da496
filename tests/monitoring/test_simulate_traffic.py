"""`manage.py simulate_traffic` against the real model server: requests from the lake's
sample data, outcomes joined to the prediction log by request id, the canary fault
scenarios written into the routing document and taken out again, input drift."""

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from serving.routing import routing_read, routing_write
from tests.serving.conftest import sample_request, start_server, trained_versions  # noqa: F401
from worker.backends.rollouts import PHASE_PROMOTE, PHASE_REVERT, RolloutPlan
from worker.backends.rollouts_local import LocalRolloutBackend


@pytest.fixture()
def server_with_log(trained_versions, tmp_path, settings):  # noqa: F811  # the fixture
    settings.PIPELINES_LAKE_ROOT = str(trained_versions.lake_root)
    routing_path = tmp_path / "routing.json"
    routing_write(routing_path, trained_versions.routing(canary_weight=50))
    log_dir = tmp_path / "predictions"
    server = start_server(routing_path, prediction_log_dir=log_dir)
    yield server, log_dir, tmp_path / "outcomes"
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def _simulate(server, outcomes, *extra):
    out = StringIO()
    call_command(
        "simulate_traffic",
        "--server",
        server.url,
        "--routing",
        str(server.routing_path),
        "--outcome-dir",
        str(outcomes),
        *extra,
        stdout=out,
    )
    return out.getvalue()


def _read(folder, model):
    lines = []
    for path in sorted((folder / model).glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def _logged(log_dir, model, count):
    for _ in range(200):  # the server writes its log off the request path
        lines = _read(log_dir, model)
        if len(lines) >= count:
            return lines
        time.sleep(0.05)  # polling a real server process, not waiting for time to pass
    raise AssertionError(f"the prediction log of {model} has fewer than {count} lines")


@pytest.mark.django_db
def test_simulate_traffic_healthy_writes_outcomes_joined_by_request_id(server_with_log):
    """Healthy traffic to all three models: every answered forecast and recommendation
    has one outcome line whose request id is in the prediction log (forecasts: seven
    days of actual units; recommendations: purchases, revenue and clicks among the
    recommended items); segments have none."""
    server, log_dir, outcomes = server_with_log
    report = _simulate(server, outcomes, "--rate", "30", "--duration", "2")
    assert "60 requests" in report
    for model in ("demand-forecasting", "product-recommendation"):
        written = _read(outcomes, model)
        assert len(written) >= 15, report
        logged = {line["request_id"]: line for line in _logged(log_dir, model, len(written))}
        for outcome in written:
            assert set(outcome) == {"ts", "request_id", "model", "actual"}
            prediction = logged[outcome["request_id"]]
            assert prediction["model"] == outcome["model"] == model
            if model == "demand-forecasting":
                assert [d["date"] for d in outcome["actual"]] == [
                    d["date"] for d in prediction["prediction"]["forecast"]
                ]
                assert all(d["units"] >= 0 for d in outcome["actual"])
            else:
                actual = outcome["actual"]
                assert actual["purchased"] and set(actual["revenue"]) == set(actual["purchased"])
                assert set(actual["clicked"]) <= set(prediction["prediction"]["items"])
    assert not (outcomes / "customer-segmentation").exists()
    assert len(_logged(log_dir, "customer-segmentation", 15)) >= 15


@pytest.mark.django_db
def test_simulate_traffic_canary_errors_injects_and_removes_the_fault(server_with_log):
    """The canary-errors scenario makes the canary answer errors while it runs, the
    stable track none, and leaves the routing document without the fault afterwards."""
    server, _log_dir, outcomes = server_with_log
    report = _simulate(
        server, outcomes, "--scenario", "canary-errors", "--model", "customer-segmentation",
        "--rate", "40", "--duration", "2",
    )  # fmt: skip
    assert "customer-segmentation: " in report and "answered 503" in report
    assert "answered 200" in report
    routing = routing_read(server.routing_path)
    assert all(not route.faults for route in routing.models.values())


@pytest.mark.django_db
def test_simulate_traffic_stops_when_told_and_removes_the_fault(server_with_log):
    """A caller's stop event ends a run long before its --duration (the demo's rollouts
    send traffic until the rollout ends, however long its steps take): the run returns,
    having sent some requests but far fewer than the duration allows, and the fault is
    out of the routing document again."""
    server, _log_dir, outcomes = server_with_log
    stop = threading.Event()
    model = "customer-segmentation"

    def stop_once_faulted() -> None:
        deadline = time.monotonic() + 60
        while not routing_read(server.routing_path).models[model].faults:
            if time.monotonic() > deadline:
                raise AssertionError("the scenario never injected its fault")
            time.sleep(0.05)  # polling a file another thread writes
        time.sleep(1.5)  # let some requests through first
        stop.set()

    with ThreadPoolExecutor(max_workers=1) as pool:
        stopping = pool.submit(stop_once_faulted)
        out = StringIO()
        call_command(
            "simulate_traffic", "--server", server.url, "--routing", str(server.routing_path),
            "--outcome-dir", str(outcomes), "--scenario", "canary-errors", "--model", model,
            "--rate", "20", "--duration", "600", stop=stop, stdout=out,
        )  # fmt: skip
        stopping.result()
    report = out.getvalue()
    sent = int(report.rsplit(" requests in ", 1)[0].rsplit("\n", 1)[-1])
    assert 0 < sent < 20 * 60, report
    routing = routing_read(server.routing_path)
    assert all(not route.faults for route in routing.models.values())


def _end_rollout_once_faulted(server, trained_versions, phase):  # noqa: F811  # the fixture
    """Wait for the run's fault on segmentation's canary, then end that rollout through
    the local rollout backend, as the worker does on a rollback or a promotion."""
    model = "customer-segmentation"
    deadline = time.monotonic() + 60
    while not routing_read(server.routing_path).models[model].faults:
        if time.monotonic() > deadline:
            raise AssertionError("the scenario never injected its fault")
        time.sleep(0.05)  # polling a file another thread writes
    artifacts = trained_versions.artifacts[model]
    backend = LocalRolloutBackend(routing_file=server.routing_path, server_url=server.url)
    backend.apply(
        RolloutPlan(
            rollout_id=1, model=model, kind="segmentation", target="canary", phase=phase,
            version="1.1.0", artifact_uri=artifacts["1.1.0"], image_digest="",
            stable_version="1.0.0", stable_artifact_uri=artifacts["1.0.0"], weight=0,
        )
    )  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(("phase", "serving"), [(PHASE_REVERT, "1.0.0"), (PHASE_PROMOTE, "1.1.0")])
def test_simulate_traffic_leaves_no_fault_when_the_rollout_ends_mid_run(
    server_with_log,
    trained_versions,  # noqa: F811  # the fixture
    sample_request,  # noqa: F811  # the fixture
    phase,
    serving,
):
    """The canary-errors scenario's canary is rolled back (or promoted) while the run
    goes on: afterwards the routing document keeps no injected fault for any version, and
    the one version left serving answers every request."""
    server, _log_dir, outcomes = server_with_log
    with ThreadPoolExecutor(max_workers=1) as pool:
        ending = pool.submit(_end_rollout_once_faulted, server, trained_versions, phase)
        _simulate(
            server, outcomes, "--scenario", "canary-errors", "--model", "customer-segmentation",
            "--rate", "20", "--duration", "3",
        )  # fmt: skip
        ending.result()
    routing = routing_read(server.routing_path)
    assert all(not route.faults for route in routing.models.values())
    route = routing.models["customer-segmentation"]
    assert (route.stable.version, route.canary) == (serving, None)
    server.route(routing)  # waits until the server serves this last revision
    answers = [
        requests.post(
            f"{server.url}/v1/models/customer-segmentation/predict",
            json=sample_request("customer-segmentation", n),
            timeout=10,
        )
        for n in range(40)
    ]
    assert [a.status_code for a in answers] == [200] * 40
    assert {a.json()["version"] for a in answers} == {serving}


@pytest.mark.django_db
def test_simulate_traffic_drift_shifts_the_served_inputs(server_with_log):
    """The drift scenario sends forecasts whose recent level is far above the sample
    data's for the same seed."""
    server, log_dir, outcomes = server_with_log
    model = "demand-forecasting"
    _simulate(server, outcomes, "--model", model, "--rate", "30", "--duration", "1")
    healthy = _logged(log_dir, model, 25)
    _simulate(
        server, outcomes, "--model", model, "--rate", "30", "--duration", "1",
        "--scenario", "drift",
    )  # fmt: skip
    both = _logged(log_dir, model, len(healthy) + 25)
    drifted = both[len(healthy) :]

    def mean(lines):
        return sum(line["inputs"]["level_28"] for line in lines) / len(lines)

    assert mean(drifted) > 1.5 * mean(healthy)


@pytest.mark.django_db
def test_simulate_traffic_refuses_bad_options(server_with_log, trained_versions):  # noqa: F811
    """A rate or duration out of range is refused, and a canary scenario without a
    canary says what to do; the routing document is not touched."""
    server, _log_dir, outcomes = server_with_log
    with pytest.raises(CommandError, match="--rate"):
        _simulate(server, outcomes, "--rate", "0")
    with pytest.raises(CommandError, match="--duration"):
        _simulate(server, outcomes, "--duration", "-1")
    routing_write(server.routing_path, trained_versions.routing(revision=7))
    with pytest.raises(CommandError, match="needs a canary"):
        _simulate(server, outcomes, "--scenario", "latency", "--duration", "1")
    assert routing_read(server.routing_path).revision == 7

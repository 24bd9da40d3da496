"""The monitoring loop end to end, with real parts: a version trained by the portal's
training runner and served by the model server, drifted traffic from the traffic
simulator, the window job scoring drift against the version's training reference, the
portal's /metrics scraped by a real Prometheus evaluating the generated rule (with a
short `for`), a real Alertmanager posting to the portal's hook, one incident, one
retraining run, and a new version that goes to review or is discarded.

The seconds each hop took are printed (run with -s to see them)."""

import json
import shutil
import subprocess
import time
from io import StringIO

import pytest
import requests
import yaml
from django.core.management import call_command

from governance.training.models import PipelineRun
from governance.training.services import run_execute
from monitoring.models import DriftResult, Incident, IncidentAction
from monitoring.rules import alert_rules
from monitoring.selectors import monitored_models
from monitoring.tasks import evaluate_windows
from serving.routing import routing_from_dict, routing_write
from tests.governance.training.conftest import (  # noqa: F401  # fixtures
    lake,
    pipelines_settings,
    train,
)
from tests.monitoring.conftest import _free_port
from tests.serving.conftest import start_server

pytestmark = [pytest.mark.prometheus, pytest.mark.django_db(transaction=True)]
TOKEN = "loop-token-for-tests"
MODEL = "demand-forecasting"


def _wait_for(what, check, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)  # polling real servers, not waiting for time to pass
    raise AssertionError(f"timed out waiting for {what}")


def _start(command, url, tmp_path, name):
    log = (tmp_path / f"{name}.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def ready():
        if process.poll() is not None:
            raise AssertionError(f"{name} exited: {(tmp_path / f'{name}.log').read_text()}")
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait_for(f"{name} to start", ready, timeout=60)
    return process


@pytest.fixture()
def alerting(live_server, tmp_path, settings):
    """Alertmanager posting to the portal's hook with the bearer token, and Prometheus
    scraping the portal's /metrics every second and evaluating the generated drift
    rule of demand forecasting every second, its `for` shortened to one second."""
    settings.ALERTMANAGER_WEBHOOK_TOKEN = TOKEN
    am_port, prom_port = _free_port(), _free_port()
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
    (tmp_path / "alertmanager.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "portal",
                    "group_by": ["alertname", "model"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "portal",
                        "webhook_configs": [
                            {
                                "url": f"{live_server.url}/hooks/alertmanager",
                                "send_resolved": True,
                                "http_config": {
                                    "authorization": {"type": "Bearer", "credentials": TOKEN}
                                },
                            }
                        ],
                    }
                ],
            }
        )
    )
    rules = alert_rules(models=monitored_models())
    group = rules["groups"][0]
    # The critical data drift rule of the model under test, as generated, with its
    # `for` and evaluation interval shortened so the test takes seconds, not minutes.
    group["rules"] = [
        {**rule, "for": "1s", "keep_firing_for": "1m"}
        for rule in group["rules"]
        if rule["labels"]["model"] == MODEL
        and rule["labels"]["metric"] == "data_drift"
        and rule["labels"]["severity"] == "critical"
    ]
    group["interval"] = "1s"
    assert len(group["rules"]) == 1
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    host = live_server.url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [{"job_name": "portal", "static_configs": [{"targets": [host]}]}],
            }
        )
    )
    alertmanager = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    processes = [
        _start(
            [
                alertmanager,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            am_url,
            tmp_path,
            "alertmanager",
        )
    ]
    try:
        processes.append(
            _start(
                [
                    shutil.which("prometheus"),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                prom_url,
                tmp_path,
                "prometheus",
            )
        )
        yield prom_url
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def test_drift_fires_alert_opens_incident_and_retrains(
    migration_data,
    train,  # noqa: F811  # the fixture
    lake,  # noqa: F811  # the fixture
    alerting,
    tmp_path,
    settings,
):
    """Drifted traffic on a trained, served version → drift stored → the generated rule
    fires in Prometheus → Alertmanager posts → one incident → one retraining run → a new
    version in review or discarded."""
    settings.MONITORING_PREDICTION_LOG_DIR = tmp_path / "predictions"
    settings.MONITORING_OUTCOME_DIR = tmp_path / "outcomes"
    settings.MONITORING_WINDOW_STEP_SECONDS = 1
    first = train(MODEL, compare=False)
    version = first.version
    assert version.drift_references.filter(feature="level_28").exists()
    routing_path = tmp_path / "routing.json"
    routing_write(
        routing_path,
        routing_from_dict(
            {
                "revision": 1,
                "models": {
                    MODEL: {
                        "stable": {"version": version.version, "artifact": version.artifact_uri}
                    }
                },
            }
        ),
    )
    server = start_server(routing_path, prediction_log_dir=settings.MONITORING_PREDICTION_LOG_DIR)
    timeline: dict[str, float] = {}
    try:
        started = time.monotonic()
        out = StringIO()
        call_command(
            "simulate_traffic",
            "--server", server.url, "--routing", str(routing_path), "--model", MODEL,
            "--scenario", "drift", "--rate", "40", "--duration", "5",
            "--snapshot", lake.base.id, "--outcome-dir", str(settings.MONITORING_OUTCOME_DIR),
            stdout=out,
        )  # fmt: skip
        assert f"{MODEL}: 200 answered 200" in out.getvalue(), out.getvalue()
        timeline["traffic (5 s of drifted requests)"] = time.monotonic() - started

        def logged():
            files = list((settings.MONITORING_PREDICTION_LOG_DIR / MODEL).glob("*.jsonl"))
            return sum(len(f.read_text().splitlines()) for f in files) >= 200

        _wait_for("the prediction log", logged)
        timeline["prediction log written"] = time.monotonic() - started
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)

    hop = time.monotonic()
    summary = evaluate_windows()
    assert "1 evaluated" in summary, summary
    kl = DriftResult.objects.get(version=version, feature="level_28", method="kl")
    assert kl.verdict == "drift" and kl.value > 0.2
    timeline["window evaluated (quality and drift stored)"] = time.monotonic() - hop

    hop = time.monotonic()

    def firing():
        alerts = requests.get(f"{alerting}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    (alert,) = _wait_for("the drift alert to fire", firing)
    assert alert["labels"]["metric"] == "data_drift" and alert["labels"]["model"] == MODEL
    timeline["scraped and the rule firing in Prometheus"] = time.monotonic() - hop

    hop = time.monotonic()
    _wait_for("the incident", lambda: Incident.objects.filter(model__slug=MODEL).exists())
    timeline["Alertmanager to the portal: incident opened"] = time.monotonic() - hop
    incident = Incident.objects.get()
    action = _wait_for(
        "the retraining action",
        lambda: IncidentAction.objects.filter(incident=incident, kind="retrain").first(),
    )
    assert action.outcome == "taken"
    run = PipelineRun.objects.get(pk=action.run_id)
    assert run.trigger == "alert" and f"Incident #{incident.pk}" in run.reason

    hop = time.monotonic()
    finished = run_execute(run_id=run.pk)  # the worker's task body, in-process
    timeline["retraining run (train, register, decide)"] = time.monotonic() - hop
    assert finished.version is not None and finished.version != version
    assert finished.state in ("succeeded", "discarded"), finished.state
    if finished.state == "succeeded":
        assert finished.version.reviews.exists()
    else:
        assert finished.version.state == "discarded"

    # One of each, however often Alertmanager repeated itself meanwhile.
    assert Incident.objects.count() == 1
    assert PipelineRun.objects.filter(trigger="alert").count() == 1
    timeline["total"] = time.monotonic() - started
    print(f"\nmonitoring loop timeline (seconds), retraining {finished.state}:")
    print(json.dumps({k: round(v, 2) for k, v in timeline.items()}, indent=2))

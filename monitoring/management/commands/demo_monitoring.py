"""A month of monitoring history for the demo: `manage.py demo_monitoring` (idempotent).

Nothing here is invented as a record: the production version of each model really
predicts on requests drawn from the sample data, each answer is written to the
prediction log (in the model server's format) with its outcome, and the portal's own
services evaluate every window, clock set back to that window by time-machine. Twelve
to nine days ago demand forecasting's inputs drift (the traffic simulator's drift
scenario); the generated critical drift rule's alert is delivered to the intake as
Alertmanager would have sent it, which opens an incident and starts a retraining run
(executed here, at that time); the alert resolves when the drift ends.

When `promtool` is on the PATH, the stored figures are also backfilled into a
Prometheus data folder (`promtool tsdb create-blocks-from openmetrics`), so the charts
show the month too when the demo's Prometheus starts on it.
"""

import hashlib
import json
import math
import secrets
import shutil
import subprocess  # nosec B404  # runs promtool with a fixed argument list
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from governance.models import RegisteredModel
from governance.selectors.registry import production_version
from governance.training.models import PipelineRun
from governance.training.services import run_execute
from monitoring.alertmanager import Alert, Notification
from monitoring.incidents import alertmanager_receive
from monitoring.models import DriftResult, Incident, QualityResult
from monitoring.rules import alert_rules
from monitoring.selectors import monitored_models
from monitoring.services import window_evaluate
from portal.audit.actors import Actor

ACTOR = Actor.system("demo")
DRIFT_MODEL = "demand-forecasting"
# Per model and window: the serving logs are written line by line, and 90 days of
# hourly windows at this rate are already some 30 million lines.
MAX_REQUESTS = 5_000
DRIFT_DAYS = (12, 9)  # the episode: from 12 days ago to 9 days ago
# The prediction log's writer must write something within this many seconds while lines
# wait (it writes every quarter second when the machine is not overloaded).
FLUSH_PROGRESS_SECONDS = 60
GROUP_KEY = '{}:{alertname=~"^(?:.*)$"}/demo-drift'


def _lines(registry: CollectorRegistry, metric: str) -> float:
    """The total of a prediction log counter (lines written, or lost), over its labels."""
    return sum(
        sample.value
        for family in registry.collect()
        if family.name == metric
        for sample in family.samples
        if sample.name == f"{metric}_total"
    )


def _fingerprint(labels: dict[str, str]) -> str:
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _rfc3339(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Command(BaseCommand):
    help = "A month of monitoring history with a drift episode, an incident and a retraining."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--window-hours", type=int, default=24)
        parser.add_argument("--requests", type=int, default=200, help="per model and window")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            import time_machine  # noqa: PLC0415 -- slow
        except ImportError:
            raise CommandError("The demo needs time-machine: pip install -e '.[dev]'") from None
        self._alertmanager_config()
        if Incident.objects.filter(labels__demo="drift-episode").exists():
            self.stdout.write("Monitoring history already there: nothing to do.")
            return
        days, hours = options["days"], options["window_hours"]
        if not 1 <= hours <= 24 or not DRIFT_DAYS[0] < days <= 90:
            raise CommandError(f"--window-hours 1 to 24; --days {DRIFT_DAYS[0] + 1} to 90.")
        if not 1 <= options["requests"] <= MAX_REQUESTS:
            raise CommandError(f"--requests 1 to {MAX_REQUESTS:,} per model and window.")
        served = self._served()
        if DRIFT_MODEL not in served:
            raise CommandError(
                f"{DRIFT_MODEL} has no production version with a training reference: "
                "run `manage.py demo_training` first."
            )
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        first = now - timedelta(days=days)
        windows = [
            (first + timedelta(hours=hours * n), first + timedelta(hours=hours * (n + 1)))
            for n in range(days * 24 // hours)
        ]
        episode = (now - timedelta(days=DRIFT_DAYS[0]), now - timedelta(days=DRIFT_DAYS[1]))
        self._write_logs(served, windows, episode, options["requests"])
        fired = resolved = None
        for start, end in windows:
            with time_machine.travel(end + timedelta(minutes=10), tick=False):
                window_evaluate(start=start, end=end, actor=ACTOR)
            if fired is None and start >= episode[0]:
                fired = end + timedelta(minutes=15)
                with time_machine.travel(fired, tick=False):
                    self._alert(fired, "firing", served[DRIFT_MODEL])
            if fired is not None and resolved is None and start >= episode[1]:
                resolved = end + timedelta(minutes=15)
                with time_machine.travel(resolved, tick=False):
                    self._alert(fired, "resolved", served[DRIFT_MODEL], ends_at=resolved)
        self.stdout.write(
            f"{len(windows)} windows evaluated: {QualityResult.objects.count()} quality "
            f"figures, {DriftResult.objects.count()} drift scores"
        )
        self._backfill()

    def _alertmanager_config(self) -> None:
        """The demo's Alertmanager configuration (var/alertmanager.yml) posting to the
        portal's hook with a token of its own (var/alertmanager-token, which the demo's
        web server reads into ALERTMANAGER_WEBHOOK_TOKEN); kept when already there."""
        var = Path(settings.VAR_DIR)
        token_file = var / "alertmanager-token"
        if not token_file.exists():
            var.mkdir(parents=True, exist_ok=True)
            token_file.write_text(secrets.token_urlsafe(32))
            token_file.chmod(0o600)
        config = {
            "route": {
                "receiver": "portal",
                "group_by": ["alertname", "model"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
            },
            "receivers": [
                {
                    "name": "portal",
                    "webhook_configs": [
                        {
                            "url": f"{settings.PORTAL_BASE_URL.rstrip('/')}/hooks/alertmanager",
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {"credentials_file": str(token_file.resolve())}
                            },
                        }
                    ],
                }
            ],
        }
        (var / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def _served(self) -> dict[str, dict[str, Any]]:
        """slug -> {"version", "kind", "predictor", "cases"} for each model whose
        production version has a local artifact and a training reference."""
        from pipelines.lake import SnapshotNotFound, open_snapshot  # -- slow
        from pipelines.traffic import traffic_cases  # -- slow
        from serving.predictors import predictor_load  # noqa: PLC0415 -- slow

        served = {}
        for model in RegisteredModel.objects.order_by("slug"):
            version = production_version(model=model)
            if version is None or not version.drift_references.exists():
                self.stdout.write(f"{model.slug}: no production version with a reference")
                continue
            try:
                snapshot = open_snapshot(
                    root=settings.PIPELINES_LAKE_ROOT, snapshot_id=version.data_version
                )
                predictor = predictor_load(kind=model.kind, artifact=version.artifact_uri)
            except (SnapshotNotFound, OSError, ValueError) as error:
                self.stdout.write(f"{model.slug}: skipped ({error})")
                continue
            tables = snapshot.load(
                ["transactions", "products", "categories", "promotions", "customers"]
            )
            cases = traffic_cases(tables, kinds=[model.kind], limit=1000).by_kind[model.kind]
            served[model.slug] = {
                "version": version,
                "kind": model.kind,
                "predictor": predictor,
                "cases": cases,
            }
        return served

    def _write_logs(self, served, windows, episode, per_window: int) -> None:
        """The prediction log and the outcomes of every window, as the model server
        and the outcome feed write them."""
        from serving.prediction_log import PredictionLog  # noqa: PLC0415 -- slow

        rng = np.random.default_rng(0)
        registry = CollectorRegistry()
        log = PredictionLog(settings.MONITORING_PREDICTION_LOG_DIR, registry)
        outcomes = Path(settings.MONITORING_OUTCOME_DIR)
        log.start()
        # One native thread per prediction, as the model server runs: OpenMP's
        # busy-waiting thread pools make each small prediction many times slower.
        with threadpool_limits(limits=1):
            self._predict_all(served, windows, episode, per_window, log, rng, outcomes)
        # The windows are evaluated from these lines: wait until every one is written,
        # however slow a busy machine makes the writer, as long as it makes progress.
        written = _lines(registry, "serving_prediction_log_lines")
        while not log.flush(timeout=FLUSH_PROGRESS_SECONDS):
            now = _lines(registry, "serving_prediction_log_lines")
            if now == written:
                raise CommandError(
                    f"The prediction log wrote nothing in {FLUSH_PROGRESS_SECONDS} s with "
                    "lines still queued."
                )
            written = now
        log.stop()
        lost = _lines(registry, "serving_prediction_log_failures")
        if lost:
            raise CommandError(f"{lost:.0f} prediction log lines were lost (see its failures).")

    def _predict_all(self, served, windows, episode, per_window, log, rng, outcomes) -> None:
        from pipelines.traffic import drifted, recommendation_outcome  # -- slow

        for slug, entry in served.items():
            kind, predictor, cases = entry["kind"], entry["predictor"], entry["cases"]
            version = entry["version"].version
            lines_by_day: dict[Path, list[str]] = {}
            for start, end in windows:
                drifting = slug == DRIFT_MODEL and episode[0] <= start < episode[1]
                seconds = (end - start).total_seconds()
                for n in range(per_window):
                    case = cases[int(rng.integers(len(cases)))]
                    body = drifted(kind, case.body, rng) if drifting else case.body
                    payload = predictor.request.model_validate(body)
                    answer = predictor.predict(payload)
                    ts = start + timedelta(seconds=seconds * (n + rng.random()) / per_window)
                    request_id = hashlib.sha256(f"{slug}{ts}{n}".encode()).hexdigest()[:32]
                    inputs = payload.model_dump(mode="json")
                    log.append(
                        ts=ts, request_id=request_id, model=slug, version=version,
                        track="stable", key=payload.key(),
                        customer_id=getattr(payload, "customer_id", None), inputs=inputs,
                        prediction={k: v for k, v in answer.body.items() if k not in inputs},
                    )  # fmt: skip
                    if case.actual is None:
                        continue
                    actual = case.actual
                    if kind == "recommendation":
                        actual = recommendation_outcome(
                            actual, answer.body["items"], rng.random(100)
                        )
                    seen = ts + timedelta(minutes=1)
                    path = outcomes / slug / f"{seen.date().isoformat()}.jsonl"
                    lines_by_day.setdefault(path, []).append(
                        json_line(
                            {"ts": _rfc3339(seen), "request_id": request_id, "model": slug,
                             "actual": actual}
                        )
                    )  # fmt: skip
            for path, lines in lines_by_day.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as out:
                    out.write("".join(lines))
            self.stdout.write(f"{slug}: {len(windows) * per_window} predictions logged")

    def _alert(self, starts_at, status: str, entry, ends_at=None) -> None:
        """The generated critical data drift rule's alert, delivered to the intake as
        Alertmanager would; a firing one starts the retraining run, run here."""
        rule = next(
            rule
            for model, thresholds in [m for m in monitored_models() if m[0].slug == DRIFT_MODEL]
            for rule in alert_rules(models=[(model, thresholds)])["groups"][0]["rules"]
            if rule["labels"]["metric"] == "data_drift" and rule["labels"]["severity"] == "critical"
        )
        labels = {"alertname": rule["alert"], **rule["labels"], "demo": "drift-episode"}
        alert = Alert(
            status=status,
            fingerprint=_fingerprint(labels),
            labels=labels,
            annotations={
                "summary": rule["annotations"]["summary"].replace(
                    "{{ $value | humanize }}", "above 0.2"
                ),
                "runbook_url": rule["annotations"]["runbook_url"],
            },
            starts_at=starts_at,
            ends_at=ends_at,
            generator_url="",
        )
        alertmanager_receive(
            notification=Notification(
                group_key=GROUP_KEY, status=status, receiver="portal", alerts=[alert]
            ),
            client_ip=None,
        )
        if status != "firing":
            self.stdout.write(f"{DRIFT_MODEL}: drift alert resolved at {ends_at:%Y-%m-%d %H:%M}")
            return
        incident = Incident.objects.get(labels__demo="drift-episode")
        self.stdout.write(
            f"{DRIFT_MODEL}: drift alert fired at {starts_at:%Y-%m-%d %H:%M}, "
            f"incident #{incident.pk}"
        )
        for action in incident.actions.filter(kind="retrain"):
            if action.run_id:
                run = run_execute(run_id=action.run_id)
                self.stdout.write(
                    f"{DRIFT_MODEL}: retraining run #{run.pk} {run.state}: {run.outcome}"
                )
        if not PipelineRun.objects.filter(trigger="alert", model__slug=DRIFT_MODEL).exists():
            self.stdout.write(f"{DRIFT_MODEL}: no retraining run was started")

    def _backfill(self) -> None:
        """The stored figures as OpenMetrics, made into Prometheus blocks when promtool
        is on the PATH (the demo's Prometheus reads var/prometheus/data)."""
        promtool = shutil.which("promtool")
        if promtool is None:
            self.stdout.write(
                "promtool not on the PATH: no Prometheus backfill (the pages show the "
                "stored figures; apt-get install prometheus to chart them)."
            )
            return
        folder = Path(settings.VAR_DIR) / "prometheus"
        folder.mkdir(parents=True, exist_ok=True)
        text = openmetrics_text()
        source = folder / "backfill.om"
        source.write_text(text)
        command = ["tsdb", "create-blocks-from", "openmetrics", str(source), str(folder / "data")]
        result = subprocess.run(  # nosec B603  # promtool from the PATH, our own arguments
            [promtool, *command], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise CommandError(f"promtool backfill failed: {result.stderr.strip()[:500]}")
        self.stdout.write(f"Prometheus backfilled from {source} into {folder / 'data'}")


def json_line(value: dict) -> str:
    return json.dumps(value, separators=(",", ":")) + "\n"


def openmetrics_text() -> str:
    """Every stored figure as an OpenMetrics sample at its window's end (seconds)."""

    def labels(**values: str) -> str:
        return ",".join(f'{k}="{v}"' for k, v in sorted(values.items()))

    lines = [
        "# HELP portal_model_quality Quality of served predictions per window",
        "# TYPE portal_model_quality gauge",
    ]
    for model, version, track, metric, value, end in (
        QualityResult.objects.filter(value__isnull=False)
        .order_by("window_end", "pk")
        .values_list(
            "version__model__slug", "version__version", "track", "metric", "value", "window_end"
        )
    ):
        if not math.isfinite(value):
            continue
        tags = labels(model=model, version=version, track=track, metric=metric)
        lines.append(f"portal_model_quality{{{tags}}} {value} {int(end.timestamp())}")
    lines += [
        "# HELP portal_model_drift Drift of served inputs per window",
        "# TYPE portal_model_drift gauge",
    ]
    for model, version, track, feature, method, value, end in (
        DriftResult.objects.filter(value__isnull=False)
        .order_by("window_end", "pk")
        .values_list(
            "version__model__slug", "version__version", "track", "feature", "method", "value",
            "window_end",
        )
    ):  # fmt: skip
        if not math.isfinite(value):
            continue
        tags = labels(model=model, version=version, track=track, feature=feature, method=method)
        lines.append(f"portal_model_drift{{{tags}}} {value} {int(end.timestamp())}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"

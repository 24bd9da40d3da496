"""Demo: really run two canary rollouts of the trained demand-forecasting version to
staging, against the model server and a Prometheus scraping it: the first meets an
error burst on the canary and is rolled back automatically at its first analysis, the
second passes every step and completes. Nothing is written as a finished record: the
rollouts start behind the board's gate and are driven by `rollout_tick`, the turn the
worker's `rollouts.tick` task takes, while `manage.py simulate_traffic` sends requests.

Traffic flows from just before each rollout's first analysis until the rollout ends,
however long its steps take on a busy machine. A rollout that ends otherwise than
planned (or does not end) is said so on stderr and the command ends without error: the
rest of the demo is still worth showing, and a second call tries again.

Needs `demo_training` and `demo_reviews` (the version approved for staging) and
Prometheus on the PATH (Debian's `prometheus` package); without it the command says
so and leaves the rollouts to the visitor. Idempotent: a second call finds the demo's
rollouts and does nothing.
"""

import io
import shutil
import subprocess  # nosec B404 -- starts the demo's model server and Prometheus
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from governance.choices import LifecycleState, Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.management.demo_board import board_approve, demo_board
from governance.reviews.selectors import gate_answer
from governance.rollouts.choices import ACTIVE_ROLLOUT_STATES, RolloutState
from governance.rollouts.models import Rollout
from governance.rollouts.services import rollout_abort, rollout_start, rollout_tick
from governance.selectors.registry import production_version
from governance.services.registry import target_assign
from portal.accounts.models import User
from portal.audit.actors import Actor

DEMO = Actor.system("demo")
MODEL = "demand-forecasting"
TARGET = Target.STAGING
# Short steps so the demo's set-up takes about a minute; latency limits loose enough for
# a laptop busy training, error and prediction limits as a real target would set them.
STRATEGY: dict[str, Any] = {
    "steps": [10, 50, 100],
    "bake_seconds": 8,
    "thresholds": {
        "min_requests": 10,
        "max_error_rate_increase": 0.05,
        "max_p95_latency_ratio": 5.0,
        "max_p99_latency_ratio": 5.0,
        "min_latency_increase_seconds": 0.25,
        # The candidate was retrained on the demo's shifted snapshot, whose sales sit on
        # another level: its forecasts move by about half on purpose.
        "max_prediction_shift": 1.0,
    },
}
RATE = 40.0  # requests per second while a rollout runs
# Seconds a rollout may take from its first step to its end before the demo gives up on
# it (its steps take about half a minute on an idle machine).
ROLLOUT_DEADLINE = 240.0
# What simulate_traffic is asked at most: the demo stops it when the rollout has ended.
TRAFFIC_LIMIT = ROLLOUT_DEADLINE + 120.0


class UnexpectedOutcome(Exception):
    """A demo rollout ended otherwise than planned, or did not end."""


class Command(BaseCommand):
    help = "Run one canary rollout that is rolled back automatically and one that completes."

    def handle(self, *args: Any, **options: Any) -> None:
        model = RegisteredModel.objects.filter(slug=MODEL).first()
        if model is None:
            raise CommandError(f"no model {MODEL!r}: run `manage.py demo_registry` first")
        if Rollout.objects.filter(
            model=model, target=TARGET, state=RolloutState.SUCCEEDED
        ).exists():
            self.stdout.write("Demo rollouts: already run.")
            return
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            self.stdout.write(
                "Demo rollouts: skipped, Prometheus is not on the PATH (canary analysis "
                "reads it). Install Debian's `prometheus` package and run `manage.py "
                "demo_rollouts`."
            )
            return
        devops = User.objects.filter(email="devops@zeromargin.example").first()
        if devops is None:
            raise CommandError("run `manage.py demo_users` first")
        # A set-up interrupted earlier may have left its rollout active: end it first.
        for left in Rollout.objects.filter(
            model=model, target=TARGET, state__in=ACTIVE_ROLLOUT_STATES
        ):
            rollout_abort(
                rollout=left, actor=DEMO, reason="Demo set-up interrupted: started again."
            )
        stable, candidate = self._versions(model)
        # Staging starts from what serves production, so the canary has a baseline the
        # model server can load; staging assignments change no version's lifecycle. The
        # board approved it for staging on its way to production (kept as it is here).
        board_approve(version=stable, target=TARGET, board=demo_board())
        target_assign(version=stable, target=TARGET, actor=DEMO)
        folder = Path(settings.VAR_DIR) / "demo-rollouts"
        folder.mkdir(parents=True, exist_ok=True)
        processes = [self._serve(), self._prometheus(prometheus, folder)]
        try:
            self._run(candidate, devops, "canary-errors", RolloutState.ROLLED_BACK)
            self._run(candidate, devops, "healthy", RolloutState.SUCCEEDED)
        except UnexpectedOutcome as outcome:
            self.stderr.write(
                f"Demo rollouts: {outcome}\nThe rest of the demo goes on without this "
                "rollout; `manage.py demo_rollouts` tries again."
            )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    def _versions(self, model: RegisteredModel) -> tuple[ModelVersion, ModelVersion]:
        stable = production_version(model=model)
        candidates = (
            ModelVersion.objects.filter(model=model)
            .exclude(pipeline_run_id="")
            .exclude(state=LifecycleState.DISCARDED)
            .order_by("-version_major", "-version_minor", "-version_patch")
        )
        candidate = next(
            (
                v
                for v in candidates
                if v != stable
                and gate_answer(model_slug=MODEL, version=v.version, target=TARGET).allowed
            ),
            None,
        )
        if stable is None or candidate is None:
            raise CommandError("run `manage.py demo_training` and `manage.py demo_reviews` first")
        for version in (stable, candidate):
            # The model server loads the local runner's artifacts (file:// URIs) here.
            if not Path(version.artifact_uri.removeprefix("file://")).exists():
                raise CommandError(f"{MODEL} {version.version}: no artifact at its URI")
        return stable, candidate

    def _serve(self) -> subprocess.Popen:
        """The model server, faults allowed (the demo injects an error burst)."""
        url = urlsplit(settings.SERVING_URL)
        process = subprocess.Popen(  # nosec B603 -- our own interpreter and module
            [
                sys.executable,
                "-m",
                "serving",
                "--routing",
                str(settings.SERVING_ROUTING_FILE),
                "--port",
                str(url.port or 8600),
                "--allow-faults",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(f"{settings.SERVING_URL}/healthz", "the model server")
        return process

    def _prometheus(self, binary: str, folder: Path) -> subprocess.Popen:
        """Prometheus scraping the model server every second, for canary analysis."""
        target = urlsplit(settings.SERVING_URL).netloc
        listen = urlsplit(settings.PROMETHEUS_URL).netloc or "127.0.0.1:9090"
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: serving\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        process = subprocess.Popen(  # nosec B603 -- the binary found on the PATH
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address={listen}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(f"{settings.PROMETHEUS_URL}/-/ready", "Prometheus")
        return process

    @staticmethod
    def _wait(url: str, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise CommandError(f"{what} did not start at {url}")

    @staticmethod
    def _requests_served() -> float:
        """The model server's request count for the demo's model, from its metrics."""
        text = requests.get(f"{settings.SERVING_URL}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("serving_requests_total{") and f'model="{MODEL}"' in line
        )

    def _wait_for_traffic(self, timeout: float = 120.0) -> None:
        before = self._requests_served()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if self._requests_served() > before:
                return
        raise UnexpectedOutcome("simulate_traffic sent nothing to the model server.")

    def _run(self, candidate: ModelVersion, devops: User, scenario: str, expected: str) -> None:
        """Start a rollout as DevOps, send `scenario` traffic, turn the rollout until it
        ends, then stop the traffic (its fault, if any, taken out again).

        UnexpectedOutcome when the rollout ends in another state than `expected`, does
        not end within ROLLOUT_DEADLINE (it is aborted then) or gets no traffic.
        """
        rollout = rollout_start(
            version=candidate,
            target=TARGET,
            actor=devops.audit_actor(),
            strategy=STRATEGY,
            queue=False,
        )
        rollout = rollout_tick(rollout_id=rollout.pk)  # the canary takes its first step
        stop = threading.Event()
        sender = threading.Thread(
            target=call_command,
            args=("simulate_traffic",),
            kwargs={
                "model": [MODEL],
                "rate": RATE,
                "duration": TRAFFIC_LIMIT,
                "scenario": scenario,
                "stop": stop,
                "stdout": io.StringIO(),
            },
            daemon=True,
        )
        sender.start()
        try:
            # The analysis reads the last bake window from Prometheus: let the traffic
            # (it loads the lake's sample data first) run a whole window before the
            # next turn.
            self._wait_for_traffic()
            time.sleep(STRATEGY["bake_seconds"] + 2)
            deadline = time.monotonic() + ROLLOUT_DEADLINE
            while rollout.state in ACTIVE_ROLLOUT_STATES or not rollout.synced:
                if time.monotonic() > deadline:
                    raise UnexpectedOutcome(
                        f"rollout #{rollout.pk} ({scenario} traffic) did not end within "
                        f"{ROLLOUT_DEADLINE:.0f} s and was aborted: {rollout.outcome}"
                    )
                time.sleep(0.5)
                rollout = rollout_tick(rollout_id=rollout.pk)
        except UnexpectedOutcome:
            rollout.refresh_from_db()
            if rollout.state in ACTIVE_ROLLOUT_STATES:
                rollout = rollout_abort(
                    rollout=rollout, actor=DEMO, reason="Demo: the rollout went amiss."
                )
                # Turn it here until the routing is back on the stable version: the
                # worker that would otherwise starts only after the set-up.
                settle = time.monotonic() + 30
                while not rollout.synced and time.monotonic() < settle:
                    rollout = rollout_tick(rollout_id=rollout.pk)
                    time.sleep(0.5)
            raise
        finally:
            stop.set()  # the traffic ends with the rollout, its fault taken out
            sender.join()
        if rollout.state != expected:
            raise UnexpectedOutcome(
                f"rollout #{rollout.pk} ({scenario} traffic) ended "
                f"{rollout.get_state_display().lower()}, not "
                f"{RolloutState(expected).label.lower()} as planned: {rollout.outcome}"
            )
        self.stdout.write(
            f"Demo rollouts: #{rollout.pk} of {MODEL} {candidate.version} to {TARGET} "
            f"({scenario} traffic) {rollout.get_state_display().lower()}: {rollout.outcome}"
        )

"""Fixtures for training runs: a small sample lake (built once per session), settings
pointing the runner at it, and helpers to start and execute runs."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from governance.models import RegisteredModel
from governance.training.choices import RunTrigger
from governance.training.models import PipelineRun
from governance.training.services import run_execute, run_start
from pipelines.lake import Snapshot
from pipelines.sample_data import DEMO_SHIFT, ensure_sample_snapshot
from portal.audit.actors import Actor

SIZE = 20_000
SEED = 3
CODE_VERSION = "0123456789abcdef0123456789abcdef01234567"
TESTER = Actor.system("tests")


@dataclass
class Lake:
    root: Path
    base: Snapshot
    shifted: Snapshot


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root = tmp_path_factory.mktemp("lake")
    return Lake(
        root=root,
        base=ensure_sample_snapshot(root=root, seed=SEED, n_transactions=SIZE),
        shifted=ensure_sample_snapshot(root=root, seed=SEED, n_transactions=SIZE, shift=DEMO_SHIFT),
    )


@pytest.fixture()
def pipelines_settings(settings, lake, tmp_path):
    settings.PIPELINES_LAKE_ROOT = str(lake.root)
    settings.PIPELINES_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    settings.CODE_VERSION = CODE_VERSION
    settings.PIPELINES_RETRAIN_TOLERANCE = "0"
    return settings


@pytest.fixture()
def train(db, pipelines_settings, lake):
    """train("demand-forecasting", snapshot=lake.base.id, params={...}) -> finished run"""

    def run(
        slug: str,
        *,
        snapshot: str | None = None,
        params: dict | None = None,
        compare: bool = True,
        actor: Actor = TESTER,
    ) -> PipelineRun:
        started = run_start(
            model=RegisteredModel.objects.get(slug=slug),
            trigger=RunTrigger.MANUAL,
            reason="test",
            actor=actor,
            params=params,
            snapshot_id=lake.base.id if snapshot is None else snapshot,
            compare_with_production=compare,
            queue=False,
        )
        return run_execute(run_id=started.pk)

    return run

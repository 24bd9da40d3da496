"""Small sample lakes and trained models, built once per test session (a few seconds)."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipelines.lake import Snapshot
from pipelines.sample_data import DEMO_SHIFT, ensure_sample_snapshot
from pipelines.steps import TrainingResult, run_pipeline

SEED = 3
SIZE = 20_000
KINDS = ("forecasting", "segmentation", "recommendation")


@dataclass
class SampleLake:
    root: Path
    artifacts: Path
    base: Snapshot
    shifted: Snapshot
    results: dict[str, TrainingResult] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> SampleLake:
    root = tmp_path_factory.mktemp("lake")
    lake = SampleLake(
        root=root,
        artifacts=tmp_path_factory.mktemp("artifacts"),
        base=ensure_sample_snapshot(root=root, seed=SEED, n_transactions=SIZE),
        shifted=ensure_sample_snapshot(root=root, seed=SEED, n_transactions=SIZE, shift=DEMO_SHIFT),
    )
    for kind in KINDS:
        lines: list[str] = []
        lake.results[kind] = run_pipeline(
            model_kind=kind,
            lake_root=root,
            artifact_root=lake.artifacts,
            snapshot_id=lake.base.id,
            seed=SEED,
            run_id=f"{kind}-base",
            log=lines.append,
        )
        lake.logs[kind] = lines
    return lake

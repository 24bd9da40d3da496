"""Training code of the three models and the sample retail data generator; plain
Python, imports no Django app.

The public names are importable from here; they load on first use, so importing the
package does not pull in pandas and scikit-learn until they are needed.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ArtifactError": "pipelines.artifacts",
    "ArtifactStore": "pipelines.artifacts",
    "LocalArtifactStore": "pipelines.artifacts",
    "load_artifact": "pipelines.artifacts",
    "store_for": "pipelines.artifacts",
    "RULES": "pipelines.compare",
    "evaluate_artifact": "pipelines.compare",
    "is_better": "pipelines.compare",
    "ALIASES": "pipelines.kinds",
    "KINDS": "pipelines.kinds",
    "kind_for": "pipelines.kinds",
    "Snapshot": "pipelines.lake",
    "SnapshotCorrupt": "pipelines.lake",
    "SnapshotNotFound": "pipelines.lake",
    "list_snapshots": "pipelines.lake",
    "open_snapshot": "pipelines.lake",
    "write_snapshot": "pipelines.lake",
    "code_version": "pipelines.lineage",
    "DEMO_SHIFT": "pipelines.sample_data",
    "SampleData": "pipelines.sample_data",
    "Shift": "pipelines.sample_data",
    "ensure_sample_snapshot": "pipelines.sample_data",
    "generate_retail_data": "pipelines.sample_data",
    "STEPS": "pipelines.steps",
    "source_data_version": "pipelines.importer",
    "CardFacts": "pipelines.steps",
    "RunContext": "pipelines.steps",
    "Step": "pipelines.steps",
    "TrainingResult": "pipelines.steps",
    "run_pipeline": "pipelines.steps",
    "ValidationFailed": "pipelines.validation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(import_module(module), name)

"""The step list a caller runs and records itself."""

import pytest

from pipelines.artifacts import local_path
from pipelines.lake import SnapshotNotFound, list_snapshots
from pipelines.steps import STEPS, RunContext


def test_steps_are_in_pipeline_order():
    assert [step.name for step in STEPS] == [
        "snapshot", "validate", "features", "train", "evaluate", "package",
    ]  # fmt: skip
    assert all(step.title for step in STEPS)


def test_steps_run_one_by_one_fill_the_context(sample_lake):
    """Run by hand, as the portal's task does: each step adds its output and logs."""
    logs: dict[str, list[str]] = {}
    ctx = RunContext(
        model_kind="demand-forecasting",  # the model's slug works as well as the kind
        lake_root=sample_lake.root,
        artifact_root=sample_lake.artifacts,
        run_id="by-hand",
        params={"max_iter": 50},
    )
    for step in STEPS:
        current: list[str] = []
        ctx.log = current.append
        step.run(ctx)
        logs[step.name] = current
    assert all(logs[name] for name in logs), logs
    assert ctx.snapshot is not None and ctx.data_version == ctx.snapshot.id
    # No snapshot id given: the newest snapshot in the lake.
    assert ctx.data_version == list_snapshots(root=sample_lake.root)[-1].id
    assert ctx.hyperparameters["max_iter"] == 50
    assert ctx.result is not None and ctx.result.model_kind == "forecasting"
    assert ctx.result.artifact_uri.endswith("/forecasting/by-hand/")


def test_rerun_with_the_same_run_id_overwrites_its_own_artifact(sample_lake):
    uris = []
    for _ in range(2):
        ctx = RunContext(
            model_kind="recommendation",
            lake_root=sample_lake.root,
            artifact_root=sample_lake.artifacts,
            snapshot_id=sample_lake.base.id,
            run_id="retried",
        )
        for step in STEPS:
            step.run(ctx)
        uris.append(ctx.result.artifact_uri)
    assert uris[0] == uris[1]
    folder = local_path(uris[0])
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.joblib"]


def test_snapshot_step_refuses_unknown_kind_param_or_snapshot(sample_lake):
    def first_step(**kwargs):
        ctx = RunContext(lake_root=sample_lake.root, artifact_root=sample_lake.artifacts, **kwargs)
        STEPS[0].run(ctx)

    with pytest.raises(ValueError, match="unknown model kind 'churn'"):
        first_step(model_kind="churn")
    with pytest.raises(ValueError, match=r"unknown parameters for forecasting: \['max_iters'\]"):
        first_step(model_kind="forecasting", params={"max_iters": 10})
    with pytest.raises(SnapshotNotFound):
        first_step(model_kind="forecasting", snapshot_id="sha256:" + "f" * 64)


def test_a_step_before_its_inputs_says_which_step_to_run(sample_lake):
    ctx = RunContext(
        model_kind="forecasting", lake_root=sample_lake.root, artifact_root=sample_lake.artifacts
    )
    with pytest.raises(RuntimeError, match="run the snapshot step first"):
        STEPS[3].run(ctx)


def test_training_stores_the_serving_reference(sample_lake):
    """Each trained version carries the reference drift monitoring scores against: the
    features the model server observes, as sampled from the training data (segments
    among the ones the model assigns), in the artifact's metadata too."""
    from pipelines.artifacts import load_artifact
    from pipelines.reference import REFERENCE_SIZE

    expected = {
        "forecasting": {"level_28", "discount"},
        "segmentation": {
            "recency_days",
            "frequency",
            "monetary",
            "visit_value",
            "unit_value",
            "promotion_share",
            "online_share",
            "weekend_share",
            "prediction",
        },
        "recommendation": {"history_length"},
    }
    for kind, features in expected.items():
        result = sample_lake.results[kind]
        reference = result.serving_reference
        assert set(reference) == features
        assert all(0 < len(values) <= REFERENCE_SIZE for values in reference.values())
        assert load_artifact(result.artifact_uri).metadata["serving_reference"] == reference
    segments = set(sample_lake.results["segmentation"].serving_reference["prediction"])
    assert segments == set(map(float, range(len(segments))))
    lengths = sample_lake.results["recommendation"].serving_reference["history_length"]
    assert max(lengths) <= 20 and min(lengths) >= 1

"""The Vertex AI component entry points, chained the way the compiled pipeline chains
them, with Cloud Storage played by a folder standing in for the /gcs FUSE mount."""

import pytest

from pipelines import vertex_steps
from pipelines.lake import write_snapshot
from pipelines.sample_data import generate_retail_data
from pipelines.suppression import customer_key, suppression_write
from pipelines.validation import ValidationFailed

SHA = "3f9a1c7e2b8d4f6a0c5e9b1d7f3a8c2e6b4d0f9a"


@pytest.fixture()
def bucket(tmp_path, monkeypatch):
    """gs://zm-ml/... is tmp_path/gcs/zm-ml/...; the lake sits beside the artifacts."""
    monkeypatch.setenv("PIPELINES_GCS_FUSE_ROOT", str(tmp_path / "gcs"))
    data = generate_retail_data(seed=0, n_transactions=20_000)
    snap = write_snapshot(root=tmp_path / "gcs" / "zm-ml" / "lake", tables=data.tables)
    return snap


def test_fuse_paths_round_trip(monkeypatch):
    monkeypatch.setenv("PIPELINES_GCS_FUSE_ROOT", "/gcs")
    assert vertex_steps.fuse_path("gs://zm-ml/artifacts") == "/gcs/zm-ml/artifacts"
    assert vertex_steps.gs_uri("file:///gcs/zm-ml/artifacts/x") == "gs://zm-ml/artifacts/x"
    assert vertex_steps.lake_root_for("gs://zm-ml/artifacts") == "/gcs/zm-ml/lake"
    assert vertex_steps.fuse_path("/local/folder") == "/local/folder"


def test_components_chained_register_a_complete_payload(tmp_path, bucket):
    out = tmp_path / "outputs"
    root = "gs://zm-ml/artifacts"
    snap = vertex_steps.snapshot(
        model_kind="forecasting",
        data_version=bucket.id,
        artifact_root=root,
        output_dir=str(out / "dataset"),
    )
    assert snap["snapshotId"] == bucket.id
    report = vertex_steps.validate(
        model_kind="forecasting", dataset_dir=str(out / "dataset"), output_dir=str(out / "report")
    )
    assert report["problems"] == 0
    vertex_steps.features(
        model_kind="forecasting", dataset_dir=str(out / "dataset"), output_dir=str(out / "feat")
    )
    hyper = vertex_steps.train(
        model_kind="forecasting", features_dir=str(out / "feat"), output_dir=str(out / "model")
    )
    assert hyper
    evaluation = vertex_steps.evaluate(
        model_kind="forecasting",
        features_dir=str(out / "feat"),
        model_dir=str(out / "model"),
        output_dir=str(out / "eval"),
    )
    assert evaluation["metrics"]["mape"] < evaluation["metrics"]["baseline_mape"]
    result = vertex_steps.register(
        model_kind="forecasting",
        data_version=bucket.id,
        code_version=SHA,
        artifact_root=root,
        model_dir=str(out / "model"),
        metrics=evaluation["metrics"],
    )
    assert result["artifactUri"].startswith("gs://zm-ml/artifacts/forecasting/")
    assert result["artifactDigest"].startswith("sha256:")
    assert (result["dataVersion"], result["codeVersion"]) == (bucket.id, SHA)
    assert result["metrics"] == evaluation["metrics"]
    assert result["cardFacts"]["training_data"]["data_version"] == bucket.id
    stored = tmp_path / "gcs" / result["artifactUri"].removeprefix("gs://")
    assert (stored / "metadata.json").exists()


def test_validate_component_fails_the_job_on_bad_data(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINES_GCS_FUSE_ROOT", str(tmp_path / "gcs"))
    data = generate_retail_data(seed=0, n_transactions=5_000)
    data.tables["transactions"].loc[0:50, "quantity"] = -3
    snap = write_snapshot(root=tmp_path / "gcs" / "zm-ml" / "lake", tables=data.tables)
    vertex_steps.snapshot(
        model_kind="forecasting",
        data_version=snap.id,
        artifact_root="gs://zm-ml/artifacts",
        output_dir=str(tmp_path / "dataset"),
    )
    with pytest.raises(ValidationFailed) as excinfo:
        vertex_steps.validate(
            model_kind="forecasting",
            dataset_dir=str(tmp_path / "dataset"),
            output_dir=str(tmp_path / "report"),
        )
    assert any("quantity" in problem for problem in excinfo.value.problems)


def test_artifact_metadata_under_200_kb_passes_and_over_it_is_refused_clearly():
    """A step's output becomes its artifact's metadata, which Vertex AI keeps only under
    200 KB: a payload that fits comes back unchanged, a larger one fails the step with
    an error naming its size and largest field."""
    fits = {"metrics": {"mape": 0.1}, "slices": {"s": "x" * 150_000}}
    assert vertex_steps.artifact_metadata(fits, step="register") is fits

    too_large = {"metrics": {"mape": 0.1}, "metricSlices": {"s": "x" * 210_000}}
    with pytest.raises(vertex_steps.ArtifactMetadataTooLarge) as caught:
        vertex_steps.artifact_metadata(too_large, step="register")
    message = str(caught.value)
    assert "register step" in message and "200000 bytes" in message
    assert message.index("metricSlices") < message.index("metrics (")


def test_evaluate_refuses_slices_too_large_for_the_metadata(tmp_path, bucket, monkeypatch):
    """The evaluate step's slices go into its artifact's metadata: too many fail the step
    with the clear error instead of a job Vertex AI refuses later."""
    out = tmp_path / "outputs"
    vertex_steps.snapshot(
        model_kind="forecasting",
        data_version=bucket.id,
        artifact_root="gs://zm-ml/artifacts",
        output_dir=str(out / "dataset"),
    )
    vertex_steps.features(
        model_kind="forecasting", dataset_dir=str(out / "dataset"), output_dir=str(out / "feat")
    )
    vertex_steps.train(
        model_kind="forecasting", features_dir=str(out / "feat"), output_dir=str(out / "model")
    )
    monkeypatch.setattr(vertex_steps, "ARTIFACT_METADATA_MAX_BYTES", 100)

    with pytest.raises(vertex_steps.ArtifactMetadataTooLarge, match="evaluate step"):
        vertex_steps.evaluate(
            model_kind="forecasting",
            features_dir=str(out / "feat"),
            model_dir=str(out / "model"),
            output_dir=str(out / "eval"),
        )


def test_snapshot_component_leaves_out_the_customers_of_the_runs_suppression_list(
    tmp_path, bucket, monkeypatch
):
    """The list the portal uploaded for the run, read through the FUSE mount with the
    hashing key the job has as a secret (its environment): the job trains on a derived
    snapshot without the listed customer."""
    customer = str(bucket.load(["transactions"])["transactions"]["customer_id"].iloc[0])
    key = b"k" * 32
    monkeypatch.setenv("DSAR_SUPPRESSION_KEY", key.hex())
    suppression_write(
        tmp_path / "gcs" / "zm-ml" / "artifacts" / "suppression" / "portal-run-7.json",
        key=key,
        purposes={"training": [customer_key(key, customer)]},
        written_at="2026-11-29T00:00:00+00:00",
    )
    snap = vertex_steps.snapshot(
        model_kind="forecasting",
        data_version=bucket.id,
        artifact_root="gs://zm-ml/artifacts",
        output_dir=str(tmp_path / "out"),
        suppression_list="gs://zm-ml/artifacts/suppression/portal-run-7.json",
    )
    assert snap["snapshotId"] != bucket.id
    ctx = vertex_steps._load(str(tmp_path / "out"))
    assert ctx.snapshot.source["suppressed"]["parent"] == bucket.id
    assert customer not in set(ctx.tables["transactions"]["customer_id"].astype(str))


def test_snapshot_component_fails_the_job_when_the_named_list_is_missing(tmp_path, bucket):
    """A run that names a list which is not there stops, rather than train on people
    who objected."""
    with pytest.raises(vertex_steps.SuppressionListMissing, match=r"portal-run-8\.json"):
        vertex_steps.snapshot(
            model_kind="forecasting",
            data_version=bucket.id,
            artifact_root="gs://zm-ml/artifacts",
            output_dir=str(tmp_path / "out"),
            suppression_list="gs://zm-ml/artifacts/suppression/portal-run-8.json",
        )
    assert not (tmp_path / "out").exists()

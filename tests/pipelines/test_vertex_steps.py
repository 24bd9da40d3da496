"""The Vertex AI component entry points, chained the way the compiled pipeline chains
them, with Cloud Storage played by a folder standing in for the /gcs FUSE mount."""

import pytest

from pipelines import vertex_steps
from pipelines.lake import write_snapshot
from pipelines.sample_data import generate_retail_data
from pipelines.secret_manager import secret_manager_endpoint
from pipelines.suppression import customer_key, suppression_write
from pipelines.validation import ValidationFailed
from tests.fakes.secretmanager_server import FakeSecretManagerServer, crc32c

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


LIST_URI = "gs://zm-ml/artifacts/suppression/portal-run-9.json"
KEY_SECRET = "projects/zm-ml/secrets/dsar-suppression-key"


@pytest.fixture()
def secret_manager(tmp_path, monkeypatch):
    """Secret Manager's stand-in, reached by the official client with Application
    Default Credentials (the job's service account), and a job environment without the
    key: as a Vertex AI component runs."""
    with FakeSecretManagerServer() as fake:
        monkeypatch.setenv("SECRET_MANAGER_API_ENDPOINT", fake.url)
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(fake.service_account_file(tmp_path))
        )
        monkeypatch.delenv("DSAR_SUPPRESSION_KEY", raising=False)
        monkeypatch.delenv("DSAR_SUPPRESSION_KEY_FILE", raising=False)
        yield fake


def _list_write(tmp_path, key: bytes, customers: list[str]) -> None:
    suppression_write(
        tmp_path / "gcs" / "zm-ml" / "artifacts" / "suppression" / "portal-run-9.json",
        key=key,
        purposes={"training": [customer_key(key, c) for c in customers]},
        written_at="2026-11-30T00:00:00+00:00",
    )


def _snapshot_with_secret(tmp_path, data_version: str, secret: str) -> dict:
    return vertex_steps.snapshot(
        model_kind="forecasting",
        data_version=data_version,
        artifact_root="gs://zm-ml/artifacts",
        output_dir=str(tmp_path / "out"),
        suppression_list=LIST_URI,
        suppression_key_secret=secret,
    )


def test_snapshot_component_reads_the_key_from_secret_manager(
    tmp_path, bucket, secret_manager, capsys
):
    """With no key in its environment, the step reads the list's hashing key from the
    secret version the run names, through the official client with the job's
    credentials (a bearer token), and leaves the listed customer out. The key is in
    neither the step's output nor the context it hands the next step."""
    customer = str(bucket.load(["transactions"])["transactions"]["customer_id"].iloc[0])
    key = bytes(range(32))
    version = secret_manager.add_secret_version(KEY_SECRET, key.hex().encode())
    _list_write(tmp_path, key, [customer])

    snap = _snapshot_with_secret(tmp_path, bucket.id, version)

    assert snap["snapshotId"] != bucket.id
    ctx = vertex_steps._load(str(tmp_path / "out"))
    assert customer not in set(ctx.tables["transactions"]["customer_id"].astype(str))
    assert ctx.suppression_key is None
    (access,) = secret_manager.accesses()
    assert access.path == f"/v1/{version}:access"
    assert secret_manager.authenticated(access)  # the service account's signed token
    saved = (tmp_path / "out" / vertex_steps.CONTEXT_FILE).read_bytes()
    assert key not in saved and key.hex().encode() not in saved
    printed = capsys.readouterr()
    assert key.hex() not in printed.out + printed.err


def test_snapshot_component_reads_a_regional_secret(tmp_path, bucket, secret_manager):
    """A regional secret (`projects/P/locations/L/secrets/S/versions/V`) is read through
    the client's regional binding, as a global one is."""
    customer = str(bucket.load(["transactions"])["transactions"]["customer_id"].iloc[0])
    key = bytes(range(32, 64))
    regional = KEY_SECRET.replace("/secrets/", "/locations/europe-west4/secrets/")
    version = secret_manager.add_secret_version(regional, key.hex().encode())
    _list_write(tmp_path, key, [customer])

    snap = _snapshot_with_secret(tmp_path, bucket.id, version)

    assert snap["snapshotId"] != bucket.id
    (access,) = secret_manager.accesses()
    assert access.path == f"/v1/{version}:access"


@pytest.mark.parametrize(
    ("name", "configured", "endpoint"),
    [
        ("projects/p/secrets/s/versions/1", "", None),
        (
            "projects/p/locations/europe-west4/secrets/s/versions/1",
            "",
            "secretmanager.europe-west4.rep.googleapis.com",
        ),
        ("projects/p/locations/europe-west4/secrets/s/versions/1", "http://h:1", "http://h:1"),
    ],
)
def test_secret_manager_endpoint_follows_the_secrets_region(
    monkeypatch, name, configured, endpoint
):
    """A regional secret is asked of its region's endpoint unless one is configured;
    a global one of the client's default."""
    monkeypatch.setenv("SECRET_MANAGER_API_ENDPOINT", configured)
    assert secret_manager_endpoint(name) == endpoint


def test_snapshot_component_prefers_the_key_in_its_environment(
    tmp_path, bucket, secret_manager, monkeypatch
):
    """A job given the key in its environment (DSAR_SUPPRESSION_KEY) uses it and does
    not call Secret Manager."""
    key = b"e" * 32
    monkeypatch.setenv("DSAR_SUPPRESSION_KEY", key.hex())
    _list_write(tmp_path, key, ["no-such-customer"])

    snap = _snapshot_with_secret(tmp_path, bucket.id, f"{KEY_SECRET}/versions/1")

    assert snap["snapshotId"] == bucket.id  # nobody listed is in this snapshot
    assert secret_manager.accesses() == []


@pytest.fixture()
def fuse_root(tmp_path, monkeypatch):
    """The /gcs mount as a folder, for steps that fail before they read the lake."""
    monkeypatch.setenv("PIPELINES_GCS_FUSE_ROOT", str(tmp_path / "gcs"))
    return tmp_path / "gcs"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "missing",
            r"has no secret version projects/zm-ml/secrets/dsar-suppression-key/versions/1",
        ),
        ("denied", r"roles/secretmanager\.secretAccessor"),
        ("wrong_crc", r"does not match its CRC32C"),
        ("not_a_key", r"is not a suppression key"),
        ("bad_credentials", r"did not accept the job's credentials"),
        ("malformed_name", r"is not a Secret Manager secret version"),
    ],
)
def test_snapshot_component_fails_the_job_when_the_secret_cannot_be_had(
    tmp_path, fuse_root, secret_manager, monkeypatch, setup, message
):
    """A named list whose key cannot be read from Secret Manager (no such version,
    access denied, a payload failing its CRC32C, a payload that is no key, credentials
    refused, a name of another shape) fails the step with the reason, writes nothing,
    and never shows the payload."""
    key = b"k" * 32
    _list_write(tmp_path, key, ["C-1"])
    version = f"{KEY_SECRET}/versions/1"
    if setup == "denied":
        secret_manager.add_secret_version(KEY_SECRET, key.hex().encode())
        secret_manager.deny(KEY_SECRET)
    elif setup == "wrong_crc":
        payload = key.hex().encode()
        secret_manager.add_secret_version(KEY_SECRET, payload, crc=crc32c(payload) ^ 1)
    elif setup == "not_a_key":
        secret_manager.add_secret_version(KEY_SECRET, b"hunter2-not-hex")
    elif setup == "bad_credentials":
        secret_manager.add_secret_version(KEY_SECRET, key.hex().encode())
        adc = secret_manager.service_account_file(tmp_path, signed_by_another_key=True)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    elif setup == "malformed_name":
        version = "dsar-suppression-key"

    with pytest.raises(vertex_steps.SuppressionKeyUnavailable, match=message) as failure:
        _snapshot_with_secret(tmp_path, "latest", version)

    assert key.hex() not in str(failure.value) and "hunter2" not in str(failure.value)
    assert not (tmp_path / "out").exists()


def test_snapshot_component_fails_the_job_when_no_secret_is_named(
    tmp_path, fuse_root, secret_manager
):
    """A named list with no key in the job's environment and no secret named fails the
    step, saying which parameter (and portal setting) to set, even before anyone is
    listed: a misconfigured project is found at its first run."""
    _list_write(tmp_path, b"k" * 32, [])

    with pytest.raises(
        vertex_steps.SuppressionKeyUnavailable,
        match=r"suppression_key_secret parameter is empty .*VERTEX_SUPPRESSION_KEY_SECRET",
    ):
        _snapshot_with_secret(tmp_path, "latest", "")
    assert secret_manager.accesses() == []

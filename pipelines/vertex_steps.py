"""Entry points of the Vertex AI Pipelines components (deploy/pipelines/training_pipeline.py).

Each component runs in a container of its own and calls the function of the same name
here, which runs the same step the local runner runs (`pipelines.steps`). The run's
context travels between components as a joblib file in the step's output artifact
folder. Vertex AI mounts Cloud Storage at /gcs/ (Cloud Storage FUSE), so `gs://bucket/x`
is read and written as `/gcs/bucket/x`; the data lake is the `lake/` folder beside the
artifact root (`gs://bucket/artifacts` → `gs://bucket/lake`).

`register` does not talk to any registry: it stores the model and puts everything the
portal registers (artifact URI and digest, metrics, slices, hyperparameters, card facts)
into the metadata of its output artifact, which the portal's worker reads from the job.
"""

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import joblib

from pipelines import lineage
from pipelines.secret_manager import SecretUnavailable, secret_version_access
from pipelines.steps import (
    RunContext,
    step_evaluate,
    step_features,
    step_package,
    step_snapshot,
    step_train,
    step_validate,
)
from pipelines.suppression import (
    KEY_FILE_VARIABLE,
    KEY_VARIABLE,
    SuppressionListInvalid,
    key_parse,
    suppression_key_from_environment,
)

CONTEXT_FILE = "context.joblib"
# Vertex AI keeps an artifact's metadata only while it stays under 200 KB (its JSON).
ARTIFACT_METADATA_MAX_BYTES = 200 * 1000


class ArtifactMetadataTooLarge(ValueError):
    """A step's output is too large for its artifact's metadata; fails the job."""


def artifact_metadata(payload: dict, *, step: str) -> dict:
    """The payload, checked to fit in an artifact's metadata; ArtifactMetadataTooLarge
    (naming its largest fields) when it does not, rather than a job that Vertex AI
    fails or truncates without saying why."""
    size = len(json.dumps(payload, default=str).encode())
    if size < ARTIFACT_METADATA_MAX_BYTES:
        return payload
    fields = sorted(
        ((len(json.dumps(v, default=str).encode()), k) for k, v in payload.items()),
        reverse=True,
    )
    largest = ", ".join(f"{key} ({bytes_} bytes)" for bytes_, key in fields[:3])
    raise ArtifactMetadataTooLarge(
        f"the {step} step's metadata is {size} bytes; Vertex AI keeps at most "
        f"{ARTIFACT_METADATA_MAX_BYTES} bytes per artifact. Largest fields: {largest}. "
        "Fewer metric slices (or shorter card facts) are needed."
    )


def _fuse_root() -> str:
    return os.environ.get("PIPELINES_GCS_FUSE_ROOT", "/gcs")


def fuse_path(uri: str) -> str:
    """`gs://bucket/path` as the container sees it; other locations unchanged."""
    if uri.startswith("gs://"):
        return f"{_fuse_root().rstrip('/')}/{uri.removeprefix('gs://')}"
    return uri


def gs_uri(path: str) -> str:
    """The inverse of fuse_path for a `file://` URI or path under the FUSE root."""
    local = path.removeprefix("file://")
    root = _fuse_root().rstrip("/") + "/"
    return f"gs://{local.removeprefix(root)}" if local.startswith(root) else path


def lake_root_for(artifact_root: str) -> str:
    parent = PurePosixPath(artifact_root.rstrip("/")).parent
    return fuse_path(str(parent).replace("gs:/", "gs://", 1) + "/lake")


def _save(ctx: RunContext, output_dir: str) -> None:
    """Write the context into the step's output artifact, without the suppression
    list's hashing key: the artifact is a file in the bucket, the key a secret (the
    list has been applied by then)."""
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    log, ctx.log = ctx.log, _quiet
    key, ctx.suppression_key = ctx.suppression_key, None
    try:
        joblib.dump(ctx, Path(output_dir) / CONTEXT_FILE)
    finally:
        ctx.log, ctx.suppression_key = log, key


def _load(input_dir: str) -> RunContext:
    ctx: RunContext = joblib.load(Path(input_dir) / CONTEXT_FILE)
    ctx.log = print
    return ctx


def _quiet(message: str) -> None:
    return None


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, str | int | float | bool)}


LATEST = "latest"


class SuppressionListMissing(FileNotFoundError):
    """The run names a suppression list that is not there; fails the job rather than
    train on people who objected."""


class SuppressionKeyUnavailable(RuntimeError):
    """The run names a suppression list but the job cannot get the list's hashing key;
    fails the job rather than train on people who objected. Never carries the key."""


def suppression_key_for_job(suppression_key_secret: str) -> bytes:
    """The suppression list's hashing key for a job: from the job's environment
    (DSAR_SUPPRESSION_KEY, DSAR_SUPPRESSION_KEY_FILE) when set there, else read from
    the Secret Manager secret version `suppression_key_secret` names
    (`projects/P/secrets/S/versions/V`, or `projects/P/locations/L/...` for a regional
    secret; its payload the key as hex).

    SuppressionKeyUnavailable when neither gives one: no secret named, the secret
    missing or not accessible, a payload failing its CRC32C, or not a key.
    """
    try:
        key = suppression_key_from_environment()
    except SuppressionListInvalid as error:
        raise SuppressionKeyUnavailable(str(error)) from None
    if key is not None:
        return key
    if not suppression_key_secret:
        raise SuppressionKeyUnavailable(
            "the run names a suppression list but the job has no key for it: the "
            "pipeline's suppression_key_secret parameter is empty (the portal's "
            f"VERTEX_SUPPRESSION_KEY_SECRET) and neither {KEY_VARIABLE} nor "
            f"{KEY_FILE_VARIABLE} is set"
        )
    try:
        payload = secret_version_access(suppression_key_secret)
    except SecretUnavailable as error:
        raise SuppressionKeyUnavailable(f"the suppression list's key: {error}") from None
    try:
        return key_parse(payload.decode("ascii"), source=f"secret {suppression_key_secret}")
    except (UnicodeDecodeError, SuppressionListInvalid):
        # key_parse's own message never quotes the text; a decode error might.
        raise SuppressionKeyUnavailable(
            f"the payload of secret {suppression_key_secret} is not a suppression key "
            "(64 or more hex digits)"
        ) from None


def snapshot(
    *,
    model_kind: str,
    data_version: str,
    artifact_root: str,
    output_dir: str,
    suppression_list: str = "",
    suppression_key_secret: str = "",
) -> dict:
    """Open the snapshot `data_version` names (`latest`: the newest in the lake), check
    its content hash, and leave out the customers the suppression list (`gs://` URI of
    the file the portal uploaded for this run; empty: nobody) names for training.

    The list's hashing key comes from the job's environment or, when it has none, from
    the Secret Manager secret version `suppression_key_secret` names
    (`suppression_key_for_job`). SuppressionListMissing when a list is named but
    absent; SuppressionKeyUnavailable when a list is named and no key can be had.
    """
    suppression_path = fuse_path(suppression_list) if suppression_list else None
    suppression_key = None
    if suppression_path is not None:
        if not Path(suppression_path).is_file():
            raise SuppressionListMissing(
                f"the run's suppression list {suppression_list} is missing"
            )
        suppression_key = suppression_key_for_job(suppression_key_secret)
    ctx = RunContext(
        model_kind=model_kind,
        lake_root=lake_root_for(artifact_root),
        artifact_root=fuse_path(artifact_root),
        snapshot_id=None if data_version == LATEST else data_version,
        log=print,
        suppression_path=suppression_path,
        suppression_key=suppression_key,
    )
    step_snapshot(ctx)
    _save(ctx, output_dir)
    return {"snapshotId": ctx.snapshot.id, "rows": ctx.snapshot.row_counts}


def validate(*, model_kind: str, dataset_dir: str, output_dir: str) -> dict:
    """Schema, nulls and ranges; raises ValidationFailed, which fails the job."""
    ctx = _load(dataset_dir)
    step_validate(ctx)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    report = {"problems": [], "tables": sorted(ctx.tables)}
    (Path(output_dir) / "report.json").write_text(json.dumps(report))
    return {"problems": 0, "tables": len(ctx.tables)}


def features(*, model_kind: str, dataset_dir: str, output_dir: str) -> dict:
    ctx = _load(dataset_dir)
    step_features(ctx)
    _save(ctx, output_dir)
    return {"snapshotId": ctx.snapshot.id}


def train(*, model_kind: str, features_dir: str, output_dir: str) -> dict:
    ctx = _load(features_dir)
    step_train(ctx)
    _save(ctx, output_dir)
    return _scalars(ctx.hyperparameters)


def evaluate(*, model_kind: str, features_dir: str, model_dir: str, output_dir: str) -> dict:
    """Score on the held-out window; `metrics` become the job's Metrics artifact."""
    ctx = _load(model_dir)
    step_evaluate(ctx)
    _save(ctx, output_dir)
    return artifact_metadata(
        {"metrics": dict(ctx.evaluation.metrics), "slices": ctx.evaluation.slices},
        step="evaluate",
    )


def register(
    *,
    model_kind: str,
    data_version: str,
    code_version: str,
    artifact_root: str,
    model_dir: str,
    metrics: dict,
) -> dict:
    """Store the model and its metadata; return what the portal registers.

    Evaluation is repeated here (it is deterministic) because the component receives
    the trained model, not the evaluation step's context.
    """
    os.environ["CODE_VERSION"] = code_version
    lineage.code_version.cache_clear()
    ctx = _load(model_dir)
    if data_version != LATEST and ctx.snapshot.id != data_version:
        raise ValueError(f"trained on {ctx.snapshot.id}, asked to register {data_version}")
    step_evaluate(ctx)
    step_package(ctx)
    result = ctx.result
    payload = {
        "artifactUri": gs_uri(result.artifact_uri.rstrip("/")),
        "artifactDigest": result.artifact_digest,
        "modelKind": result.model_kind,
        "dataVersion": result.data_version,
        "codeVersion": result.code_version,
        "metrics": result.metrics,
        "metricSlices": result.metric_slices,
        "hyperparameters": result.hyperparameters,
        "evaluationSettings": result.evaluation_settings,
        "cardFacts": result.card_facts.to_dict(),
        "runId": result.run_id,
    }
    return artifact_metadata(payload, step="register")

"""The training pipeline as steps the caller can run, time and record one by one:
snapshot, validate, features, train, evaluate, package.

    ctx = RunContext(model_kind="forecasting", lake_root=..., artifact_root=..., log=...)
    for step in STEPS:
        step.run(ctx)          # raises on failure; ValidationFailed carries the reasons
    ctx.result                 # TrainingResult: the registration payload and card facts

A step keeps its outputs in the context only, so a run that dies part-way is started
again from the first step; the package step writes to `<kind>/<run_id>/` in the artifact
store, so a retried run with the same run id overwrites its own files, never adds more.
"""

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from pipelines.artifacts import save_artifact, store_for
from pipelines.kinds import kind_for
from pipelines.kinds.base import Evaluation, ModelKindPipeline, Settings, compute_threads
from pipelines.lake import Snapshot, open_snapshot, rows_matching, snapshot_derive
from pipelines.lineage import code_version
from pipelines.reference import serving_reference
from pipelines.suppression import CUSTOMER_COLUMN, TRAINING, suppression_read
from pipelines.validation import ValidationFailed, validate_tables

DATASET = "Zero Margin retail data lake"
ARTIFACT_FORMAT = 1


def _discard(message: str) -> None:
    return None


@dataclass
class CardFacts:
    """What the pipeline knows for the model card, in the shapes of the card's
    structured sections (governance.cards_schema): `data_schema` is
    {"fields": [{name, type, source, personal_data, description}]}; `training_data` and
    `evaluation_data` are {dataset, data_version, period_start, period_end, row_count}.
    `text` holds Markdown per section key (data_schema, training_data,
    evaluation_data, performance)."""

    data_schema: dict[str, Any]
    training_data: dict[str, Any]
    evaluation_data: dict[str, Any]
    text: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingResult:
    """A trained, evaluated and stored model version: what registration needs."""

    model_kind: str  # forecasting | segmentation | recommendation
    artifact_uri: str  # the artifact folder: model.joblib + metadata.json
    artifact_digest: str  # sha256:<hex> of model.joblib
    hyperparameters: dict[str, Any]
    evaluation_settings: dict[str, Any]
    metrics: dict[str, float]
    metric_slices: dict[str, dict[str, dict[str, float]]]
    data_version: str  # the snapshot id, sha256:<hex>
    code_version: str  # git SHA, or "unknown"
    card_facts: CardFacts
    run_id: str
    seed: int
    # feature -> sample of training values the server will see (`pipelines.reference`)
    serving_reference: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunContext:
    """Inputs of a run, and what the steps add to it as they go."""

    model_kind: str  # forecasting | segmentation | recommendation (or the model slug)
    lake_root: str | Path
    artifact_root: str | Path  # a path, file:// URI or gs://bucket/prefix
    snapshot_id: str | None = None  # None: the newest snapshot in the lake
    params: dict[str, Any] = field(default_factory=dict)  # hyperparameters and evaluation settings
    seed: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    log: Callable[[str], None] = _discard
    # The suppression list the portal wrote for this run (pipelines.suppression): its
    # `training` customers are left out of the snapshot the model is trained on. Its
    # hashing key: None reads it from the environment (pipelines.suppression).
    suppression_path: str | Path | None = None
    suppression_key: bytes | None = field(default=None, repr=False)

    # Filled by the steps.
    kind: ModelKindPipeline | None = None
    settings: Settings | None = None
    snapshot: Snapshot | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    features: Any = None
    model: Any = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    result: TrainingResult | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step (run_pipeline)

    @property
    def data_version(self) -> str | None:
        return self.snapshot.id if self.snapshot else None


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: Callable[[RunContext], None]


def _require(value: Any, step: str) -> Any:
    if value is None:
        raise RuntimeError(f"run the {step} step first")
    return value


def step_snapshot(ctx: RunContext) -> None:
    """Resolve the snapshot, check its content hash, load the tables the model reads."""
    ctx.kind = kind_for(ctx.model_kind)
    ctx.settings = ctx.kind.settings(ctx.params)
    ctx.snapshot = open_snapshot(root=ctx.lake_root, snapshot_id=ctx.snapshot_id)
    ctx.log(f"snapshot {ctx.snapshot.id} (created {ctx.snapshot.created_at or 'unknown'})")
    ctx.snapshot = snapshot_without_suppressed(ctx)
    present = [name for name in ctx.kind.tables if name in ctx.snapshot.tables]
    ctx.tables = ctx.snapshot.load(present, verify=True)
    for name, frame in ctx.tables.items():
        ctx.log(f"loaded {name}: {len(frame):,} rows, content hash verified")
    problems = ctx.kind.missing_inputs(ctx.tables)
    if problems:
        raise ValidationFailed(problems)
    absent = [name for name in ctx.kind.tables if name not in ctx.tables]
    if absent:
        ctx.log(f"not in the snapshot, trained without: {', '.join(absent)}")


def snapshot_without_suppressed(ctx: RunContext) -> Snapshot:
    """The run's snapshot without the customers the suppression list leaves out of
    training: a new snapshot of the lake (its own content hash, so lineage names the
    data actually trained on), or the snapshot itself when nobody in it is suppressed.
    The new snapshot's `source` keeps the original's and says what was removed.

    Only the customer column is read to find the rows; the tables are then rewritten
    a batch at a time (`snapshot_derive`), so a lake of any size fits in memory."""
    snapshot = _require(ctx.snapshot, "snapshot")
    suppression = suppression_read(ctx.suppression_path, key=ctx.suppression_key)
    if not suppression.keys(TRAINING):
        return snapshot
    # Each id is hashed once: the transactions' customers are the customers table's.
    verdicts: dict[str, bool] = {}

    def suppressed(ids: list[str]) -> list[str]:
        fresh = [i for i in ids if i not in verdicts]
        listed = suppression.suppressed_among(fresh, TRAINING)
        verdicts.update((i, i in listed) for i in fresh)
        return [i for i in ids if verdicts[i]]

    drop = rows_matching(snapshot, column=CUSTOMER_COLUMN, select=suppressed)
    if not drop:
        ctx.log("suppression list: nobody in this snapshot is left out of training")
        return snapshot
    removed = {name: int(pc.sum(mask).as_py()) for name, mask in drop.items()}
    derived = snapshot_derive(
        snapshot,
        root=ctx.lake_root,
        drop=drop,
        source={
            **snapshot.source,
            "suppressed": {
                "parent": snapshot.id,
                "rows_removed": removed,
                "list_written_at": suppression.written_at,
            },
        },
    )
    counts = ", ".join(f"{name}: {rows:,}" for name, rows in sorted(removed.items()))
    ctx.log(f"suppression list: left out the rows of suppressed customers ({counts})")
    ctx.log(f"training on snapshot {derived.id}, derived from {snapshot.id}")
    return derived


def _partial(snapshot: Snapshot | None) -> bool:
    """An import of the client's export may leave out tables and columns the models
    can do without; the lake's own snapshots (the sample) must have all of them."""
    return bool(snapshot and snapshot.source.get("kind") == "import")


def step_validate(ctx: RunContext) -> None:
    """Schema, nulls, ranges, keys and references, then the model's own needs."""
    kind = _require(ctx.kind, "snapshot")
    problems = validate_tables(ctx.tables, list(ctx.tables), partial=_partial(ctx.snapshot))
    if not problems:
        problems = kind.check(ctx.tables, ctx.settings)
    if problems:
        for problem in problems:
            ctx.log(f"problem: {problem}")
        raise ValidationFailed(problems)
    rows = sum(len(frame) for frame in ctx.tables.values())
    ctx.log(f"validated {len(ctx.tables)} tables, {rows:,} rows: no problems")


def step_features(ctx: RunContext) -> None:
    kind = _require(ctx.kind, "snapshot")
    ctx.features = kind.features(ctx.tables, ctx.settings)
    training = kind.training_data(ctx.features)
    ctx.log(f"training data: {training['text']}")


def step_train(ctx: RunContext) -> None:
    kind = _require(ctx.kind, "snapshot")
    _require(ctx.features, "features")
    with compute_threads():
        ctx.model, ctx.hyperparameters = kind.train(ctx.features, ctx.settings, ctx.seed)
    shown = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in ctx.hyperparameters.items()
        if not isinstance(v, list | dict)
    )
    ctx.log(f"trained {type(ctx.model).__name__} with {shown or 'its defaults'}")


def step_evaluate(ctx: RunContext) -> None:
    kind = _require(ctx.kind, "snapshot")
    _require(ctx.model, "train")
    with compute_threads():
        ctx.evaluation = kind.evaluate(ctx.model, ctx.features, ctx.settings)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in ctx.evaluation.metrics.items())
    ctx.log(f"evaluation: {ctx.evaluation.data.get('text', '')}")
    ctx.log(f"metrics: {metrics}")


def _card_facts(ctx: RunContext) -> CardFacts:
    kind, evaluation, snapshot = ctx.kind, ctx.evaluation, ctx.snapshot
    training = kind.training_data(ctx.features)
    dataset = f"{DATASET}, snapshot {snapshot.id[:19]}"
    imported = _import_text(snapshot)
    if imported:
        names = ", ".join(f["name"] for f in snapshot.source.get("files", []))
        dataset = f"Import of {names}, snapshot {snapshot.id[:19]}"
        if snapshot.source.get("data_version"):
            dataset = f"Import of {snapshot.source['data_version']}, snapshot {snapshot.id[:19]}"
    source = ", ".join(sorted(ctx.tables))
    training_data = {
        "dataset": f"{dataset} ({source})",
        "data_version": snapshot.id,
        "period_start": training["period_start"],
        "period_end": training["period_end"],
        "row_count": int(training["row_count"]),
    }
    evaluation_data = {
        "dataset": f"{dataset}: {evaluation.data['dataset']}",
        "data_version": snapshot.id,
        "period_start": evaluation.data["period_start"],
        "period_end": evaluation.data["period_end"],
        "row_count": int(evaluation.data["row_count"]),
    }
    schema = kind.card_schema(ctx.tables)
    personal = [f["name"] for f in schema["fields"] if f["personal_data"]]
    schema_text = f"{len(schema['fields'])} input fields from {source}. " + (
        f"Personal data: {', '.join(personal)}."
        if personal
        else "No personal data: sales are used summed per category and day."
    )
    return CardFacts(
        data_schema=schema,
        training_data=training_data,
        evaluation_data=evaluation_data,
        text={
            "data_schema": schema_text,
            "training_data": "\n\n".join(
                part for part in (training["text"], imported, _derived_text(snapshot)) if part
            ),
            "evaluation_data": evaluation.data["text"],
            "performance": "\n\n".join(evaluation.notes),
        },
    )


def _import_text(snapshot: Snapshot) -> str:
    """Where an imported snapshot came from and what the import rejected, for the card's
    training data section (empty for the lake's own snapshots)."""
    source = snapshot.source
    if source.get("kind") != "import":
        return ""
    files = "; ".join(
        f"{f['name']} as {f['table']} (sha256:{f['sha256']}"
        + (f", data version {f['version']}" if f.get("version") else "")
        + ")"
        for f in source.get("files", [])
    )
    parts = [f"Imported from {files}."]
    for table, report in (source.get("rejections") or {}).get("tables", {}).items():
        rejected = int(report.get("rows_rejected", 0))
        line = (
            f"{table}: {int(report.get('rows_read', 0)):,} rows read, "
            f"{int(report.get('rows_accepted', 0)):,} kept, {rejected:,} rejected at import"
        )
        if rejected:
            reasons = report.get("rejected", {})
            line += " (" + ", ".join(f"{reasons[r]['count']:,} {r}" for r in sorted(reasons)) + ")"
        parts.append(line + ".")
        for column, how in (report.get("computed") or {}).items():
            parts.append(f"{table}.{column} was computed at import as {how}.")
    return " ".join(parts)


def _derived_text(snapshot: Snapshot) -> str:
    """For a snapshot a run derived without suppressed customers, the snapshot it came
    from (an import's data version, or the sample's) and the rows left out; else ""."""
    if not snapshot.parent:
        return ""
    removed = (snapshot.source.get("suppressed") or {}).get("rows_removed") or {}
    counts = ", ".join(f"{name}: {int(rows):,}" for name, rows in sorted(removed.items()))
    return (
        f"Trained on snapshot {snapshot.id}, derived from snapshot {snapshot.parent} "
        "without the rows of customers on the suppression list"
        + (f" ({counts})." if counts else ".")
    )


def step_package(ctx: RunContext) -> None:
    """Store the model and its metadata; build the registration payload."""
    kind = _require(ctx.kind, "snapshot")
    evaluation = _require(ctx.evaluation, "evaluate")
    facts = _card_facts(ctx)
    version = code_version()
    reference = serving_reference(
        kind=kind.kind, features=ctx.features, model=ctx.model, seed=ctx.seed
    )
    metadata = {
        "format": ARTIFACT_FORMAT,
        "model_kind": kind.kind,
        "run_id": ctx.run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": ctx.seed,
        "hyperparameters": ctx.hyperparameters,
        "evaluation_settings": ctx.settings.evaluation,
        "metrics": evaluation.metrics,
        "metric_slices": evaluation.slices,
        "data_version": ctx.snapshot.id,
        "code_version": version,
        "card_facts": facts.to_dict(),
        "serving_reference": reference,
    }
    store = store_for(ctx.artifact_root)
    uri, digest = save_artifact(
        store=store, key=f"{kind.kind}/{ctx.run_id}", model=ctx.model, metadata=metadata
    )
    ctx.result = TrainingResult(
        model_kind=kind.kind,
        artifact_uri=uri,
        artifact_digest=digest,
        hyperparameters=ctx.hyperparameters,
        evaluation_settings=dict(ctx.settings.evaluation),
        metrics=dict(evaluation.metrics),
        metric_slices=evaluation.slices,
        data_version=ctx.snapshot.id,
        code_version=version,
        card_facts=facts,
        run_id=ctx.run_id,
        seed=ctx.seed,
        serving_reference=reference,
    )
    ctx.log(f"stored the model at {uri} ({digest})")


STEPS: list[Step] = [
    Step("snapshot", "Load the data snapshot", step_snapshot),
    Step("validate", "Validate schema, nulls and ranges", step_validate),
    Step("features", "Build features", step_features),
    Step("train", "Train", step_train),
    Step("evaluate", "Evaluate on held-out data", step_evaluate),
    Step("package", "Store the artifact and metadata", step_package),
]


def run_pipeline(
    *,
    model_kind: str,
    lake_root: str | Path,
    artifact_root: str | Path,
    snapshot_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    run_id: str | None = None,
    log: Callable[[str], None] | None = None,
    suppression_path: str | Path | None = None,
    suppression_key: bytes | None = None,
) -> TrainingResult:
    """Run every step in order and return the result; a failing step's exception
    propagates (ValidationFailed for unfit data). Side effects: the artifact folder."""
    ctx = RunContext(
        model_kind=model_kind,
        lake_root=lake_root,
        artifact_root=artifact_root,
        snapshot_id=snapshot_id,
        params=dict(params or {}),
        seed=seed,
        log=log or _discard,
        suppression_path=suppression_path,
        suppression_key=suppression_key,
    )
    if run_id is not None:
        ctx.run_id = run_id
    for step in STEPS:
        started = time.perf_counter()
        step.run(ctx)
        ctx.timings[step.name] = time.perf_counter() - started
        ctx.log(f"step {step.name} done in {ctx.timings[step.name]:.2f}s")
    return _require(ctx.result, "package")

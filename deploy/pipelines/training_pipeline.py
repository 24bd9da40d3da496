"""The training pipeline Vertex AI Pipelines runs, written in the KFP v2 DSL.

One definition serves the client's three models: `model_kind` picks the training code
(demand-forecasting, customer-segmentation, product-recommendation). Each step is a
lightweight component whose body calls the matching function of
`pipelines.vertex_steps` in the pipelines image, so the code Vertex AI runs is the code
the local runner runs.

Compile it into training_pipeline.json (see README.md):

    python deploy/pipelines/training_pipeline.py
"""

import os
from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

# The image the steps run in. Its tag is replaced at submit time by the worker's
# VertexPipelines.submit(container_image=...), so one compiled file serves every release.
PIPELINE_IMAGE = os.environ.get("PIPELINE_IMAGE", "portal-pipelines:latest")

# The image ships kfp and the pipelines package: nothing is installed when a step starts.
component = dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)


@component
def snapshot(
    model_kind: str,
    data_version: str,
    artifact_root: str,
    suppression_list: str,
    suppression_key_secret: str,
    dataset: Output[Dataset],
) -> None:
    """Materialise the data snapshot `data_version` names, without the customers the
    suppression list (a gs:// URI the portal uploaded; empty: nobody) leaves out. The
    list's hashing key is read from the Secret Manager secret version
    `suppression_key_secret` names, as the job's service account."""
    from pipelines import vertex_steps

    dataset.metadata.update(
        vertex_steps.snapshot(
            model_kind=model_kind,
            data_version=data_version,
            artifact_root=artifact_root,
            output_dir=dataset.path,
            suppression_list=suppression_list,
            suppression_key_secret=suppression_key_secret,
        )
    )
    dataset.metadata["dataVersion"] = data_version


@component
def validate(model_kind: str, dataset: Input[Dataset], report: Output[Artifact]) -> None:
    """Check schema, nulls and ranges; a failed check raises and stops the run."""
    from pipelines import vertex_steps

    report.metadata.update(
        vertex_steps.validate(
            model_kind=model_kind, dataset_dir=dataset.path, output_dir=report.path
        )
    )


@component
def features(model_kind: str, dataset: Input[Dataset], feature_set: Output[Dataset]) -> None:
    """Build the model's features from the validated snapshot."""
    from pipelines import vertex_steps

    feature_set.metadata.update(
        vertex_steps.features(
            model_kind=model_kind, dataset_dir=dataset.path, output_dir=feature_set.path
        )
    )


@component
def train(
    model_kind: str, code_version: str, feature_set: Input[Dataset], model: Output[Model]
) -> None:
    """Fit the model; its hyperparameters go into the artifact's metadata."""
    from pipelines import vertex_steps

    model.metadata.update(
        vertex_steps.train(
            model_kind=model_kind,
            features_dir=feature_set.path,
            output_dir=model.path,
        )
    )
    model.metadata["codeVersion"] = code_version


@component
def evaluate(
    model_kind: str,
    feature_set: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
) -> None:
    """Score the model on the held-out window; scalar metrics become Metrics entries."""
    from pipelines import vertex_steps

    result = vertex_steps.evaluate(
        model_kind=model_kind,
        features_dir=feature_set.path,
        model_dir=model.path,
        output_dir=evaluation.path,
    )
    for name, value in result.get("metrics", {}).items():
        metrics.log_metric(name, value)
    evaluation.metadata.update(result)


@component
def register(
    model_kind: str,
    data_version: str,
    code_version: str,
    artifact_root: str,
    model: Input[Model],
    metrics: Input[Metrics],
    registered_model: Output[Artifact],
) -> None:
    """Store the model; its artifact's metadata carries what the portal registers."""
    from pipelines import vertex_steps

    result = vertex_steps.register(
        model_kind=model_kind,
        data_version=data_version,
        code_version=code_version,
        artifact_root=artifact_root,
        model_dir=model.path,
        metrics=dict(metrics.metadata),
    )
    # The portal's worker reads the registration payload from this artifact's metadata.
    registered_model.metadata.update(result)
    registered_model.uri = result.get("artifactUri", registered_model.uri)


@dsl.pipeline(
    name="portal-training",
    description="Snapshot, validate, features, train, evaluate and register one model.",
)
def training_pipeline(  # nosec B107 -- the default is "no secret named", not a password
    model_kind: str,
    data_version: str,
    code_version: str,
    artifact_root: str,
    suppression_list: str = "",
    suppression_key_secret: str = "",
) -> None:
    snapshot_task = snapshot(
        model_kind=model_kind,
        data_version=data_version,
        artifact_root=artifact_root,
        suppression_list=suppression_list,
        suppression_key_secret=suppression_key_secret,
    )
    validate_task = validate(model_kind=model_kind, dataset=snapshot_task.outputs["dataset"])
    features_task = features(model_kind=model_kind, dataset=snapshot_task.outputs["dataset"]).after(
        validate_task
    )
    train_task = train(
        model_kind=model_kind,
        code_version=code_version,
        feature_set=features_task.outputs["feature_set"],
    )
    evaluate_task = evaluate(
        model_kind=model_kind,
        feature_set=features_task.outputs["feature_set"],
        model=train_task.outputs["model"],
    )
    register(
        model_kind=model_kind,
        data_version=data_version,
        code_version=code_version,
        artifact_root=artifact_root,
        model=train_task.outputs["model"],
        metrics=evaluate_task.outputs["metrics"],
    )


if __name__ == "__main__":
    compiler.Compiler().compile(
        pipeline_func=training_pipeline,
        package_path=str(Path(__file__).with_name("training_pipeline.json")),
    )

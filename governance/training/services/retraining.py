"""The retraining decision: is the version a run trained better than production, on the
same held-out data, within the tolerance the settings or the production policy allow?"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from governance.choices import Target
from governance.models import ModelVersion, RegisteredModel
from governance.reviews.selectors import policy_for
from governance.selectors.registry import production_version
from governance.training.choices import RunState
from governance.training.models import PipelineRun
from governance.training.services.attempt import RunAttempt, error_describe, plain_json


def retrain_tolerance(*, model: RegisteredModel, metric: str) -> tuple[float, str]:
    """The relative slack on the primary metric, and where it came from."""
    raw = str(getattr(settings, "PIPELINES_RETRAIN_TOLERANCE", "0")).strip().lower()
    if raw == "policy":
        policy = policy_for(model=model, target=Target.PRODUCTION)
        if policy is None:
            return 0.0, "no production review policy: strictly better"
        own = (policy.metric_tolerances or {}).get(metric)
        if own is not None:
            return float(own), f"production review policy, {metric} tolerance"
        return float(policy.metric_tolerance_default), "production review policy, default tolerance"
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"PIPELINES_RETRAIN_TOLERANCE must be a number or 'policy', not {raw!r}"
        ) from None
    if value < 0:
        raise ImproperlyConfigured("PIPELINES_RETRAIN_TOLERANCE cannot be negative")
    return value, "PIPELINES_RETRAIN_TOLERANCE"


def production_metrics(
    *, run: PipelineRun, production: ModelVersion | None
) -> tuple[dict[str, float] | None, str, str]:
    """(metrics, basis, note) of the production version to compare with: rescored on
    the run's held-out data when its artifact can be read here, else as recorded."""
    from pipelines import (  # -- slow
        ArtifactError,
        SnapshotCorrupt,
        SnapshotNotFound,
        ValidationFailed,
        evaluate_artifact,
    )

    if production is None:
        return None, "none", "No version is in production: nothing to compare with."
    reason = "it has no artifact URI"
    if production.artifact_uri:
        try:
            metrics = evaluate_artifact(
                run.model.kind,
                production.artifact_uri,
                settings.PIPELINES_LAKE_ROOT,
                run.snapshot_id or None,
                params=run.params,
            )
        except (
            ArtifactError,
            NotImplementedError,
            ValueError,
            OSError,
            KeyError,
            SnapshotCorrupt,
            SnapshotNotFound,
            ValidationFailed,
        ) as error:
            reason = error_describe(error)
        else:
            return (
                plain_json(metrics),
                "rescored",
                f"Production {production.version} was scored on this run's held-out "
                "data (same snapshot, same split and baseline).",
            )
    return (
        dict(production.metrics or {}),
        "recorded",
        f"No comparable production artifact ({reason}): compared with the metrics "
        f"production {production.version} recorded at its registration, on its own "
        "data, so the comparison is only indicative.",
    )


def retraining_decide(*, attempt: RunAttempt) -> None:
    """Compare the run's registered version with production on the same held-out data
    and finish the run: to a canary review when better (within the tolerance), else
    discarded. Side effects: see `RunAttempt.finish`."""
    from pipelines import RULES, is_better  # -- slow

    run = attempt.run
    version = ModelVersion.objects.select_related("model").get(pk=run.version_id)
    model = run.model
    if not run.compare_with_production:
        outcome = (
            f"Version {version.version} registered without a comparison (the first "
            "training of this model here: nothing of its own to compare with); no "
            "review opened."
        )
        attempt.finish(RunState.SUCCEEDED, outcome, {}, "pipeline_run.succeeded")
        return
    production = production_version(model=model)
    if production is not None and production.pk == version.pk:
        outcome = f"Version {version.version} already serves production."
        attempt.finish(RunState.SUCCEEDED, outcome, {}, "pipeline_run.succeeded")
        return
    attempt.log(
        "comparing with production "
        + (production.version if production else "(none)")
        + " on the same held-out data"
    )
    current, basis, note = production_metrics(run=run, production=production)
    metric = RULES[model.kind].metric
    tolerance, tolerance_source = retrain_tolerance(model=model, metric=metric)
    better, why = is_better(model.kind, version.metrics, current, tolerance=tolerance)
    comparison = {
        "metric": metric,
        "higher_is_better": RULES[model.kind].higher_is_better,
        "new_version": version.version,
        "new": version.metrics,
        "production_version": production.version if production else None,
        "production": current,
        "basis": basis,
        "basis_note": note,
        "tolerance": tolerance,
        "tolerance_source": tolerance_source,
        "better": better,
        "explanation": why,
    }
    attempt.log(f"{note} {why}")
    if better:
        outcome = (
            f"Version {version.version} is better than production: sent to the review "
            f"board for canary. {why} {note}"
        )
        attempt.finish(RunState.SUCCEEDED, outcome, comparison, "pipeline_run.succeeded")
    else:
        outcome = f"Version {version.version} discarded: not better than production. {why} {note}"
        attempt.finish(RunState.DISCARDED, outcome, comparison, "pipeline_run.discarded")

"""Reads of the model registry: models with what serves each target, versions,
metric trends and comparisons. Query counts do not depend on the number of rows."""

from dataclasses import dataclass

from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404

from governance.choices import Target
from governance.metrics import metric_label, metric_names_ordered, metric_spec
from governance.models import (
    CardSection,
    ModelVersion,
    RegisteredModel,
    TargetAssignment,
)

SEMVER_DESC = ("-version_major", "-version_minor", "-version_patch", "-registered_at")
SEMVER_ASC = ("version_major", "version_minor", "version_patch", "registered_at")


def models_overview(*, kind: str = "") -> list[RegisteredModel]:
    """Every model, each with `.targets` ({target: version}), `.latest` (the highest
    version) and `.versions_count`. Three queries whatever the number of rows."""
    latest_id = (
        ModelVersion.objects.filter(model=OuterRef("pk")).order_by(*SEMVER_DESC).values("pk")[:1]
    )
    models = RegisteredModel.objects.select_related("owner").annotate(
        versions_count=Count("versions"), latest_id=Subquery(latest_id)
    )
    if kind:
        models = models.filter(kind=kind)
    models_list = list(models)
    latest = ModelVersion.objects.in_bulk([m.latest_id for m in models_list if m.latest_id])
    targets: dict[int, dict[str, ModelVersion]] = {m.pk: {} for m in models_list}
    for assignment in TargetAssignment.objects.filter(model__in=models_list).select_related(
        "version"
    ):
        targets[assignment.model_id][assignment.target] = assignment.version
    for model in models_list:
        model.targets = targets[model.pk]
        model.latest = latest.get(model.latest_id)
        model.latest_metrics = headline_metrics(model=model, version=model.latest)
    return models_list


@dataclass(frozen=True)
class HeadlineMetric:
    name: str
    label: str
    value: float
    percent: bool


def headline_metrics(*, model: RegisteredModel, version: ModelVersion | None) -> list:
    """The numeric metrics of a version, the catalogue's first."""
    metrics = (version.metrics or {}) if version else {}
    numeric = {k for k, v in metrics.items() if isinstance(v, int | float)}
    rows = []
    for name in metric_names_ordered(kind=model.kind, names=numeric):
        spec = metric_spec(kind=model.kind, name=name)
        rows.append(
            HeadlineMetric(
                name=name,
                label=metric_label(kind=model.kind, name=name),
                value=metrics[name],
                percent=bool(spec and spec.percent),
            )
        )
    return rows


def model_get(*, slug: str) -> RegisteredModel:
    model = RegisteredModel.objects.select_related("owner").filter(slug=slug).first()
    if model is None:
        raise Http404(f"No model {slug}.")
    return model


def model_targets(*, model: RegisteredModel) -> dict[str, ModelVersion]:
    return {
        a.target: a.version
        for a in TargetAssignment.objects.filter(model=model).select_related("version__model")
    }


def versions_for_model(*, model: RegisteredModel, state: str | list[str] = "") -> QuerySet:
    """Versions of one model, highest semantic version first, with their target
    assignments, card sections and training runs prefetched."""
    versions = (
        ModelVersion.objects.filter(model=model)
        .select_related("model", "card")
        .prefetch_related(
            Prefetch("assignments", queryset=TargetAssignment.objects.order_by("target")),
            Prefetch("card__sections", queryset=CardSection.objects.order_by("key")),
            "runs",  # the training run's data version and snapshot (the API's lineage)
        )
        .order_by(*SEMVER_DESC)
    )
    if state:
        versions = versions.filter(state__in=[state] if isinstance(state, str) else state)
    return versions


def version_get(*, model_slug: str, version: str) -> ModelVersion:
    found = (
        ModelVersion.objects.select_related("model__owner", "card")
        .filter(model__slug=model_slug, version=version)
        .first()
    )
    if found is None:
        raise Http404(f"No version {version} of {model_slug}.")
    return found


def production_version(*, model: RegisteredModel) -> ModelVersion | None:
    assignment = (
        TargetAssignment.objects.select_related("version")
        .filter(model=model, target=Target.PRODUCTION)
        .first()
    )
    return assignment.version if assignment else None


BASELINE_PREFIX = "baseline_"


def metrics_trend(*, model: RegisteredModel, metric: str = "") -> dict:
    """The numeric metrics of every version in semantic-version order, one series per
    metric, for a chart that draws one metric at a time (metrics of different scales on
    one axis hide each other):

    {"versions": [str], "states": [str], "selected": str,
     "series": [{"name", "label", "percent": bool, "values": [float | None],
                 "baseline": [float | None] | None}]}

    A metric `baseline_<name>` (the pipeline's naive forecast scored on the same
    held-out data) is not a series of its own: it is `baseline` of the series `<name>`.
    `values` holds None where a version did not report the metric. `selected` is
    `metric` when it names a series, else the first series' name ("" with none)."""
    rows = list(
        ModelVersion.objects.filter(model=model)
        .order_by(*SEMVER_ASC)
        .values_list("version", "state", "metrics")
    )

    def column(name: str) -> list[float | None]:
        return [
            value
            if isinstance(value := (m or {}).get(name), int | float) and not isinstance(value, bool)
            else None
            for _, _, m in rows
        ]

    names: set[str] = set()
    for _, _, metrics in rows:
        names |= {
            k
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    series = []
    for name in metric_names_ordered(kind=model.kind, names=names):
        if name.startswith(BASELINE_PREFIX) and name[len(BASELINE_PREFIX) :] in names:
            continue
        spec = metric_spec(kind=model.kind, name=name)
        baseline = BASELINE_PREFIX + name
        series.append(
            {
                "name": name,
                "label": metric_label(kind=model.kind, name=name),
                "percent": bool(spec and spec.percent),
                "values": column(name),
                "baseline": column(baseline) if baseline in names else None,
            }
        )
    known = [s["name"] for s in series]
    return {
        "versions": [v for v, _, _ in rows],
        "states": [s for _, s, _ in rows],
        "selected": metric if metric in known else (known[0] if known else ""),
        "series": series,
    }


@dataclass(frozen=True)
class MetricComparison:
    name: str
    label: str
    value: object
    baseline: object
    change: float | None  # value - baseline, numbers only
    change_ratio: float | None  # change / |baseline|
    verdict: str  # "better", "worse", "same", "" (no baseline or no direction)
    percent: bool


def metrics_compare(
    *,
    version: ModelVersion,
    baseline: ModelVersion | None,
    baseline_metrics: dict | None = None,
) -> list:
    """Each metric of `version` beside the baseline's (the production version), with
    the change and whether it is better or worse given the metric's direction.
    `baseline_metrics` replaces the baseline's recorded metrics (e.g. production
    rescored on this version's held-out data)."""
    kind = version.model.kind
    mine = version.metrics or {}
    theirs = (baseline.metrics or {}) if baseline else {}
    if baseline_metrics is not None:
        theirs = baseline_metrics
    rows = []
    for name in metric_names_ordered(kind=kind, names=set(mine) | set(theirs)):
        value, base = mine.get(name), theirs.get(name)
        spec = metric_spec(kind=kind, name=name)
        change = ratio = None
        verdict = ""
        numbers = isinstance(value, int | float) and isinstance(base, int | float)
        if numbers:
            change = value - base  # type: ignore[operator]
            ratio = change / abs(base) if base else None  # type: ignore[arg-type]
            if abs(change) < 1e-12:
                verdict = "same"
            elif spec is not None:
                better = change < 0 if spec.lower_is_better else change > 0
                verdict = "better" if better else "worse"
        rows.append(
            MetricComparison(
                name=name,
                label=metric_label(kind=kind, name=name),
                value=value,
                baseline=base,
                change=change,
                change_ratio=ratio,
                verdict=verdict,
                percent=bool(spec and spec.percent),
            )
        )
    return rows


def version_numbers(*, model: RegisteredModel) -> list[str]:
    """The model's version numbers, highest first (for pickers)."""
    return list(
        ModelVersion.objects.filter(model=model)
        .order_by(*SEMVER_DESC)
        .values_list("version", flat=True)
    )


def versions_trained_on(*, data_versions: list[str]) -> QuerySet:
    """Model versions whose training data is one of these data versions (lake snapshot
    ids): what a GDPR erasure must flag as trained on the person's data."""
    return (
        ModelVersion.objects.filter(data_version__in=data_versions)
        .select_related("model")
        .order_by("model__slug", *SEMVER_ASC)
    )

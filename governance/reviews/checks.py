"""The automated checks a review's policy may require, evaluated against the version's
evidence as it is now. Reads only."""

from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import prefetch_related_objects

from governance.choices import Target
from governance.metrics import metric_spec
from governance.models import ModelCard, ModelVersion
from governance.reviews.choices import CheckKey, ReviewState
from governance.reviews.models import Review
from governance.selectors.baselines import production_comparison
from governance.selectors.cards import card_missing_sections
from governance.selectors.fairness import fairness_measures

# Canary comes after staging, production after canary.
PREVIOUS_TARGET: dict[str, str] = {Target.CANARY: Target.STAGING, Target.PRODUCTION: Target.CANARY}


@dataclass(frozen=True)
class CheckResult:
    key: str
    label: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _card(version: ModelVersion) -> ModelCard | None:
    try:
        return version.card
    except ModelCard.DoesNotExist:
        return None


def _card_complete(version: ModelVersion) -> tuple[bool, str]:
    card = _card(version)
    if card is None:
        return False, "The version has no model card."
    missing = card_missing_sections(card=card)
    if missing:
        return False, "Empty or not confirmed: " + ", ".join(missing) + "."
    return True, "Every required section is written and confirmed."


def _fairness_present(version: ModelVersion) -> tuple[bool, str]:
    """Passes on what the pipeline measured across groups (the version's slice metrics),
    not on the card's text: a fairness section nobody measured proves nothing. The
    card's section is the card-complete check's business."""
    measures = fairness_measures(version=version)
    if not measures:
        return False, (
            "Nothing measured across groups: the version's evaluation stored no slice "
            "metrics by region, category, activity or age band to compare."
        )
    return True, "Measured: " + "; ".join(m.summary for m in measures) + "."


def _lineage_complete(version: ModelVersion) -> tuple[bool, str]:
    missing = [
        name
        for name in ("data_version", "code_version", "image_digest")
        if not getattr(version, name)
    ]
    if missing:
        return False, "Missing: " + ", ".join(missing) + "."
    return True, "Data version, code version and image digest are recorded."


def metric_direction(*, kind: str, name: str, snapshot: dict[str, Any]) -> str:
    """ "lower" or "higher" (which is better), or "" when nobody said."""
    declared = (snapshot.get("metric_directions") or {}).get(name)
    if declared in ("lower", "higher"):
        return declared
    spec = metric_spec(kind=kind, name=name)
    if spec is None:
        return ""
    return "lower" if spec.lower_is_better else "higher"


def metric_worsening(*, value: float, baseline: float, direction: str) -> float:
    """How much worse `value` is than `baseline`, relative to the baseline (0.08 is 8%
    worse; negative is better). With a zero baseline, the absolute difference."""
    worse_by = value - baseline if direction == "lower" else baseline - value
    return worse_by / abs(baseline) if baseline else worse_by


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metrics_not_worse(version: ModelVersion, snapshot: dict[str, Any]) -> tuple[bool, str]:
    compared = production_comparison(version=version)
    if compared is None:
        return True, "No other version is in production to compare with."
    production = compared.production
    tolerances = snapshot.get("metric_tolerances") or {}
    default = float(snapshot.get("metric_tolerance_default", 0.05))
    mine, theirs, basis = version.metrics or {}, compared.metrics, compared.basis
    problems, judged = [], 0
    for name in sorted(theirs):
        if name in tolerances and tolerances[name] is None:
            continue
        direction = metric_direction(kind=version.model.kind, name=name, snapshot=snapshot)
        if not direction or not _is_number(theirs[name]):
            continue
        if not _is_number(mine.get(name)):
            problems.append(f"{name} is missing (production {production.version} reports it)")
            continue
        judged += 1
        tolerance = float(tolerances.get(name, default))
        worse = metric_worsening(value=mine[name], baseline=theirs[name], direction=direction)
        if worse > tolerance:
            problems.append(
                f"{name} {mine[name]:g} against {theirs[name]:g} in production: "
                f"{worse:.1%} worse, tolerance {tolerance:.1%}"
            )
    if problems:
        return False, "; ".join(problems) + f" (compared with {basis})."
    return True, (
        f"{judged} metric{'s' if judged != 1 else ''} within tolerance of production "
        f"{production.version} (compared with {basis})."
    )


def _previous_target_approved(version: ModelVersion, target: str) -> tuple[bool, str]:
    previous = PREVIOUS_TARGET.get(target)
    if previous is None:
        return True, "Staging has no earlier target."
    approved = Review.objects.filter(
        version=version,
        target=previous,
        approved_at__isnull=False,
        state__in=(ReviewState.APPROVED, ReviewState.EXPIRED),
    ).exists()
    if not approved:
        return False, f"Version {version.version} has not been approved for {previous}."
    return True, f"Approved for {previous}."


def checks_evaluate(
    *, version: ModelVersion, target: str, snapshot: dict[str, Any]
) -> list[CheckResult]:
    """Each check the policy snapshot requires, with its outcome and a sentence why."""
    card = _card(version)
    if card is not None:
        # Two checks read the card's sections: one query serves both.
        prefetch_related_objects([card], "sections")
    wanted = [
        (CheckKey.CARD_COMPLETE, "check_card_complete", lambda: _card_complete(version)),
        (CheckKey.FAIRNESS_PRESENT, "check_fairness_present", lambda: _fairness_present(version)),
        (CheckKey.LINEAGE_COMPLETE, "check_lineage_complete", lambda: _lineage_complete(version)),
        (
            CheckKey.METRICS_NOT_WORSE,
            "check_metrics_not_worse",
            lambda: _metrics_not_worse(version, snapshot),
        ),
        (
            CheckKey.PREVIOUS_TARGET_APPROVED,
            "check_previous_target",
            lambda: _previous_target_approved(version, target),
        ),
    ]
    results = []
    for key, flag, run in wanted:
        if not snapshot.get(flag):
            continue
        passed, detail = run()
        results.append(CheckResult(key=key, label=str(key.label), passed=passed, detail=detail))
    return results

"""The review's fairness check passes on what the pipeline measured across groups (the
version's slice metrics), never on text in the card: a fairness section claiming "within
1 point" with nothing measured fails; measured slices pass and the detail states the
measured range and gap, with each metric's direction deciding best and worst."""

import pytest

from governance.choices import ModelKind, Target
from governance.reviews.checks import checks_evaluate
from governance.reviews.choices import CheckKey
from governance.selectors.fairness import fairness_assessment_rows, fairness_measures
from tests.factories import ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db

SNAPSHOT = {"check_fairness_present": True}


def _check(version):
    (result,) = checks_evaluate(version=version, target=Target.STAGING, snapshot=SNAPSHOT)
    assert result.key == CheckKey.FAIRNESS_PRESENT
    return result


def test_fairness_check_fails_on_card_text_without_measurements():
    """The factory's card has a fairness row ("within 1 point"); nothing was measured."""
    version = ModelVersionFactory(metric_slices={})
    assert version.card.sections.get(key="fairness_assessment").data["assessments"]
    result = _check(version)
    assert not result.passed
    assert result.detail.startswith("Nothing measured across groups")


def test_fairness_check_fails_with_one_group_or_a_group_missing_the_metric():
    one_group = ModelVersionFactory(metric_slices={"region": {"north": {"mape": 0.1}}})
    patchy = ModelVersionFactory(
        metric_slices={"region": {"north": {"mape": 0.1}, "south": {"rows": 3.0}}}
    )
    assert not _check(one_group).passed
    assert not _check(patchy).passed


def test_fairness_check_passes_on_measured_error_by_category_lower_is_better():
    version = ModelVersionFactory(
        metric_slices={
            "category": {
                "grocery": {"mae": 5.1, "mape": 0.095},
                "apparel": {"mae": 9.0, "mape": 0.151},
                "household": {"mae": 6.0, "mape": 0.11},
            },
            "horizon_week": {"1": {"mape": 0.09}, "2": {"mape": 0.2}},
        }
    )
    result = _check(version)
    assert result.passed, result.detail
    assert result.detail == (
        "Measured: MAPE by category: from 9.5% (grocery) to 15.1% (apparel), a gap of 5.6 points."
    )


def test_fairness_measures_hit_rate_by_region_higher_is_better():
    model = RegisteredModelFactory(slug="test-recommendation", kind=ModelKind.RECOMMENDATION)
    version = ModelVersionFactory(
        model=model,
        metric_slices={
            "region": {
                "North": {"customers": 40.0, "hit_rate_at_k": 0.31},
                "Wales": {"customers": 12.0, "hit_rate_at_k": 0.22},
            },
            "activity": {
                "new": {"hit_rate_at_k": 0.1},
                "regular": {"hit_rate_at_k": 0.3},
            },
        },
    )
    region, activity = fairness_measures(version=version)
    assert (region.dimension, region.best, region.worst) == ("region", "North", "Wales")
    assert region.gap_text == "9.0 points"
    assert (activity.best, activity.worst) == ("regular", "new")
    assert _check(version).passed


def test_fairness_rows_for_the_card_come_from_the_measurements():
    version = ModelVersionFactory(
        metric_slices={
            "category": {"grocery": {"mape": 0.095}, "apparel": {"mape": 0.151}},
        }
    )
    (row,) = fairness_assessment_rows(version=version, assessed_by="Training pipeline")
    assert row["groups"] == "category: apparel, grocery"
    assert row["metric"] == "MAPE per category"
    assert row["result"] == (
        "measured on the held-out data: best grocery, worst apparel, gap 5.6 points"
    )
    assert row["assessed_by"] == "Training pipeline"
    assert (
        fairness_assessment_rows(version=ModelVersionFactory(metric_slices={}), assessed_by="x")
        == []
    )

"""Drift maths against distributions whose answer is known: the same distribution stays
under Evidently's thresholds, a shifted one goes over, too few samples give no verdict."""

import numpy as np
import pytest

from monitoring.choices import DriftMethod, DriftVerdict
from monitoring.drift import category_drift, histogram_drift, sample_drift

METHODS = [DriftMethod.PSI, DriftMethod.JENSEN_SHANNON, DriftMethod.WASSERSTEIN, DriftMethod.KL]


@pytest.fixture()
def rng():
    return np.random.default_rng(12)


@pytest.mark.parametrize("method", METHODS)
def test_sample_drift_same_distribution_is_no_drift(rng, method):
    """Two draws of N(100, 15) are not drift by any method."""
    score = sample_drift(
        reference=rng.normal(100, 15, 5000), current=rng.normal(100, 15, 5000), method=method
    )
    assert score.verdict == DriftVerdict.NO_DRIFT, score
    assert score.value < 0.1
    assert (score.reference_count, score.current_count) == (5000, 5000)


@pytest.mark.parametrize("method", METHODS)
def test_sample_drift_shifted_by_one_sd_is_drift(rng, method):
    """The mean moved by one standard deviation is drift by every method."""
    score = sample_drift(
        reference=rng.normal(100, 15, 5000), current=rng.normal(115, 15, 5000), method=method
    )
    assert score.verdict == DriftVerdict.DRIFT, score
    assert score.value > 0.1


def test_normed_wasserstein_equals_the_shift_in_standard_deviations(rng):
    """Normed Wasserstein of a pure shift is the shift over the reference's deviation."""
    reference = rng.normal(0, 2, 20000)
    score = sample_drift(reference=reference, current=reference + 1.0, method="wasserstein")
    assert score.value == pytest.approx(1.0 / reference.std(), rel=1e-6)


def test_psi_and_kl_match_their_definitions_on_histograms():
    """PSI = sum (c - r) ln(c / r); KL = sum r ln(r / c), on shares."""
    ref, cur = np.array([500, 300, 200]), np.array([300, 300, 400])
    r, c = ref / ref.sum(), cur / cur.sum()
    psi = histogram_drift(centres=[0, 1, 2], reference_counts=ref, current_counts=cur, method="psi")
    kl = histogram_drift(centres=[0, 1, 2], reference_counts=ref, current_counts=cur, method="kl")
    assert psi.value == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert kl.value == pytest.approx(float(np.sum(r * np.log(r / c))))


@pytest.mark.parametrize("method", METHODS)
def test_too_few_samples_is_not_enough_data(rng, method):
    """A window with 99 values on either side gives no value and no verdict."""
    score = sample_drift(
        reference=rng.normal(0, 1, 5000), current=rng.normal(5, 1, 99), method=method
    )
    assert score.verdict == DriftVerdict.NOT_ENOUGH_DATA
    assert score.value is None


def test_category_drift_uses_jensen_shannon_and_sees_new_categories():
    """Same category mix: no drift; a category appearing from nowhere: drift."""
    reference = {"food": 500, "toys": 300, "garden": 200}
    same = category_drift(reference=reference, current={"food": 250, "toys": 150, "garden": 100})
    assert same.method == "jensenshannon"
    assert same.verdict == DriftVerdict.NO_DRIFT
    assert same.value == pytest.approx(0.0, abs=1e-9)
    shifted = category_drift(reference=reference, current={"food": 200, "toys": 100, "pets": 400})
    assert shifted.verdict == DriftVerdict.DRIFT


def test_histogram_drift_refuses_mismatched_bins():
    """Histograms over different bins cannot be compared."""
    with pytest.raises(ValueError, match="one count per bin"):
        histogram_drift(
            centres=[0, 1], reference_counts=[1, 2, 3], current_counts=[1, 2], method="psi"
        )

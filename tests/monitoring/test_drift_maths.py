"""Drift maths against distributions whose answer is known: the same distribution stays
under Evidently's thresholds, a shifted one goes over, too few samples give no verdict,
and a small window is judged against the noise two samples of its size carry."""

import numpy as np
import pytest
from scipy import integrate, stats

from monitoring.choices import DriftMethod, DriftVerdict
from monitoring.drift import (
    category_drift,
    histogram_drift,
    min_conclusive_samples,
    sample_drift,
)

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


def _normal_bridge() -> float:
    """The integral of sqrt(F (1 - F)) over the standard normal: the Brownian-bridge
    mean of the normed Wasserstein distance, before sqrt(2 / pi)."""
    return integrate.quad(lambda x: np.sqrt(stats.norm.cdf(x) * stats.norm.sf(x)), -12, 12)[0]


def test_normed_wasserstein_is_the_shift_in_standard_deviations_less_its_noise_floor(rng):
    """Normed Wasserstein of a pure shift is the shift over the reference's deviation,
    less what two normal samples of these sizes would score by chance:
    sqrt(2 / pi) * 1.61 * sqrt(1 / n + 1 / m)."""
    reference = rng.normal(0, 2, 20000)
    score = sample_drift(reference=reference, current=reference + 1.0, method="wasserstein")
    floor = np.sqrt(2 / np.pi) * _normal_bridge() * np.sqrt(2 / 20000)
    assert 0.012 < floor < 0.013
    assert score.value == pytest.approx(1.0 / reference.std() - floor, abs=2e-4)


def test_psi_and_kl_match_their_definitions_less_the_chi_square_mean():
    """PSI = sum (c - r) ln(c / r); KL = sum r ln(r / c), on shares; less the mean a
    healthy window shows: (k - 1) / n_eff for PSI, half that for KL (3 bins, n_eff 500)."""
    ref, cur = np.array([500, 300, 200]), np.array([300, 300, 400])
    r, c = ref / ref.sum(), cur / cur.sum()
    psi = histogram_drift(centres=[0, 1, 2], reference_counts=ref, current_counts=cur, method="psi")
    kl = histogram_drift(centres=[0, 1, 2], reference_counts=ref, current_counts=cur, method="kl")
    assert psi.value == pytest.approx(float(np.sum((c - r) * np.log(c / r))) - 2 / 500)
    assert kl.value == pytest.approx(float(np.sum(r * np.log(r / c))) - 1 / 500)


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


HEALTHY = {
    "normal": lambda rng, n: rng.normal(100, 15, n),
    "lognormal": lambda rng, n: rng.lognormal(3, 0.8, n),
}
SHIFTED = {
    "normal": lambda rng, n: rng.normal(115, 15, n),
    "lognormal": lambda rng, n: rng.lognormal(3.8, 0.8, n),
}


@pytest.mark.parametrize("shape", sorted(HEALTHY))
def test_healthy_windows_of_200_never_drift_across_seeds(shape):
    """200 requests against a 2,000-value reference of the same distribution, 200
    seeds: raw KL on 30 bins would read 0.1 or more in about 4 windows in 10 here.
    No method says drift; KL has enough samples to say "no drift" and stays below its
    threshold; the others, too noisy at this size, say "not enough data"."""
    draw = HEALTHY[shape]
    for seed in range(200):
        rng = np.random.default_rng(seed)
        reference, current = draw(rng, 2000), draw(rng, 200)
        for method in METHODS:
            score = sample_drift(reference=reference, current=current, method=method)
            assert score.verdict != DriftVerdict.DRIFT, (seed, score)
        kl = sample_drift(reference=reference, current=current, method=DriftMethod.KL)
        assert kl.verdict == DriftVerdict.NO_DRIFT and kl.value < 0.1, (seed, kl)


@pytest.mark.parametrize("shape", sorted(HEALTHY))
def test_healthy_windows_of_5000_are_below_every_threshold_across_seeds(shape):
    """With large windows every method answers, and answers "no drift"."""
    draw = HEALTHY[shape]
    for seed in range(30):
        rng = np.random.default_rng(seed)
        reference, current = draw(rng, 2000), draw(rng, 5000)
        for method in METHODS:
            score = sample_drift(reference=reference, current=current, method=method)
            assert score.verdict == DriftVerdict.NO_DRIFT and score.value < 0.1, (seed, score)


@pytest.mark.parametrize("size", [200, 5000])
@pytest.mark.parametrize("shape", sorted(SHIFTED))
def test_shifted_windows_drift_at_small_and_large_sizes_across_seeds(shape, size):
    """A shift of about one standard deviation stands clear of a small window's noise:
    every method says drift at 200 requests as at 5,000."""
    for seed in range(30):
        rng = np.random.default_rng(seed)
        reference, current = HEALTHY[shape](rng, 2000), SHIFTED[shape](rng, size)
        for method in METHODS:
            score = sample_drift(reference=reference, current=current, method=method)
            assert score.verdict == DriftVerdict.DRIFT and score.value > 0.1, (seed, score)


def test_a_window_too_small_for_the_method_is_not_enough_data_not_no_drift(rng):
    """200 healthy requests: PSI, Jensen-Shannon and normed Wasserstein cannot yet tell
    a drift of their threshold's size from noise, so they say "not enough data"
    rather than a reassuring "no drift"; at 2,000 requests they answer."""
    reference = rng.normal(100, 15, 2000)
    small, large = rng.normal(100, 15, 200), rng.normal(100, 15, 2000)
    for method in ("psi", "jensenshannon", "wasserstein"):
        score = sample_drift(reference=reference, current=small, method=method)
        assert score.verdict == DriftVerdict.NOT_ENOUGH_DATA and score.value is None, score
        assert score.current_count == 200
        score = sample_drift(reference=reference, current=large, method=method)
        assert score.verdict == DriftVerdict.NO_DRIFT, score


def test_min_conclusive_samples_follows_from_the_bins_and_the_threshold():
    """The effective sample size from which a healthy window stays below the threshold
    in 999 windows of 1,000: (chi2 quantile - (k - 1)) / (scale * threshold)."""
    excess = stats.chi2.ppf(0.999, 29) - 29
    assert min_conclusive_samples(method="kl") == pytest.approx(excess / (2 * 0.1))
    assert min_conclusive_samples(method="psi") == pytest.approx(excess / 0.1)
    assert min_conclusive_samples(method="jensenshannon") == pytest.approx(excess / (8 * 0.01))
    assert min_conclusive_samples(method="kl", bins=10) < min_conclusive_samples(method="kl")
    assert min_conclusive_samples(method="kl", threshold=0.2) == pytest.approx(excess / 0.4)
    assert min_conclusive_samples(method="wasserstein") == pytest.approx(
        (2.2 * np.sqrt(2 / np.pi) * _normal_bridge() / 0.1) ** 2, rel=1e-2
    )

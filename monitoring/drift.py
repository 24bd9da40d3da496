"""Drift between a version's training reference and what it serves, per feature.

The statistics are scipy's; the defaults are Evidently's (its `DataDriftPreset`):
numeric columns by the normed Wasserstein distance (the distance divided by the
reference's standard deviation), categorical ones by the Jensen-Shannon distance, PSI
and KL divergence over 30 bins laid on both samples together, empty bins replaced by
0.0001 so that the logarithms stay finite; every threshold 0.1. A window with fewer
than MIN_SAMPLES values on either side gets "not enough data", never a verdict: a few
dozen requests at night say nothing about drift.

Small windows. Two samples of one distribution never score zero: with n serving and m
reference values, the binned divergences of a healthy window are, for large samples,
chi-square distributed with k - 1 degrees of freedom (k: the bins holding a value on
either side), scaled by the effective sample size n_eff = n m / (n + m):

    n_eff PSI ~ chi2(k - 1)    2 n_eff KL ~ chi2(k - 1)    8 n_eff JS ~ chi2(k - 1)

(JS is the Jensen-Shannon divergence, the square of the distance; for PSI this is
Yurdakul's result, "Statistical properties of the population stability index", 2018).
With k = 30 and n = 200 against 2,000 reference values a healthy window's KL is about
0.08 on average and often above 0.1: noise, read as drift. The normed Wasserstein
distance has the same trouble: sqrt(n_eff) W tends to the integral of |B(F(x))| for a
Brownian bridge B, whose mean is sqrt(2 / pi) times the integral of sqrt(F (1 - F))
(del Barrio, Gine and Matran, 1999), about 1.1 to 1.4 reference deviations.

So every method reports its *excess over that noise floor*: the score less the mean a
healthy window of these sizes would show, never below zero (for Jensen-Shannon the
floor comes off the divergence, then the square root is taken). At large samples the
floor is negligible and the scores are Evidently's. Each method also has a noise
margin: how far above its floor a healthy window scores at most in NULL_QUANTILE of
windows (the chi-square quantile for the binned methods; WASSERSTEIN_TAIL times the
floor for Wasserstein, the worst ratio of the Brownian-bridge integral's 99.9th
percentile to its mean over normal, log-normal, exponential, Student-t(3) and uniform
distributions). Where the margin reaches the threshold the window is too small for
that method: a score above the margin is still drift (a big shift shows in a small
window), anything else is "not enough data" rather than a "no drift" the window cannot
support. With the defaults (30 bins, threshold 0.1, 2,000 reference values) a method
needs about n_eff >= 147 (KL, n ~ 160 requests), 293 (PSI, n ~ 345), 366
(Jensen-Shannon, n ~ 450) and 803 (normed Wasserstein of a normal feature, n ~ 1,340) to
answer "no drift"; `min_conclusive_samples` gives the figure for any bin count and
threshold. Sparse bins are pooled first (fewer than MIN_EXPECTED values of the smaller
sample expected), and an empty bin holds half a count rather than 0.0001 when that is
more, so that the chi-square picture holds in the tails of a small window.

Serving metrics arrive as Prometheus histograms (counts per bucket), so every method
also works from counts over shared bucket edges.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2, wasserstein_distance

from monitoring.choices import DriftMethod, DriftVerdict

MIN_SAMPLES = 100
N_BINS = 30
EMPTY_BIN = 0.0001
# Fewest values of the smaller sample a bin is expected to hold before it is scored.
MIN_EXPECTED = 5
# A healthy window scores above its noise margin in 1 window of 1,000.
NULL_QUANTILE = 0.999
# The binned divergences of a healthy window: SCALE * n_eff * divergence ~ chi2(k - 1).
CHI2_SCALE: dict[str, float] = {
    DriftMethod.PSI: 1.0,
    DriftMethod.KL: 2.0,
    DriftMethod.JENSEN_SHANNON: 8.0,
}
# The 99.9th percentile of the Brownian-bridge integral over its mean, at worst (3.12
# for the uniform, 2.3 to 2.8 for the others measured): Wasserstein's margin is
# (WASSERSTEIN_TAIL - 1) times its floor.
WASSERSTEIN_TAIL = 3.2
THRESHOLDS: dict[str, float] = {
    DriftMethod.PSI: 0.1,
    DriftMethod.JENSEN_SHANNON: 0.1,
    DriftMethod.WASSERSTEIN: 0.1,
    DriftMethod.KL: 0.1,
}


@dataclass(frozen=True)
class DriftScore:
    method: str
    value: float | None  # None: not enough data
    threshold: float
    verdict: str
    reference_count: int
    current_count: int


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total
    # An empty bin holds half a count (the Haldane-Anscombe correction) or Evidently's
    # 0.0001, whichever is more: with a small sample an empty bin says little, and a
    # fixed 0.0001 would make each one weigh log(share / 0.0001) in KL and PSI.
    shares = np.where(shares == 0, max(EMPTY_BIN, 0.5 / total), shares)
    return shares / shares.sum()


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _kl(ref: np.ndarray, cur: np.ndarray) -> float:
    # KL(reference || current), as Evidently orders it.
    return float(np.sum(ref * np.log(ref / cur)))


def _pooled_sparse_bins(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two histograms with neighbouring bins pooled until each would hold at least
    MIN_EXPECTED values of the smaller sample (the chi-square rule of thumb), left to
    right, a short remainder going into the last bin; bins empty on both sides drop.
    With large samples only the sparse tails are pooled."""
    pooled = (ref / ref.sum() + cur / cur.sum()) / 2 * min(ref.sum(), cur.sum())
    groups = np.zeros(len(ref), dtype=int)
    group, held = 0, 0.0
    for index, expected in enumerate(pooled):
        groups[index] = group
        held += expected
        if held >= MIN_EXPECTED:
            group, held = group + 1, 0.0
    if held and group:  # the remainder joins the bin before it
        groups[groups == group] = group - 1
    ref = np.bincount(groups, weights=ref)
    cur = np.bincount(groups, weights=cur)
    kept = (ref > 0) | (cur > 0)
    return ref[kept], cur[kept]


def _effective_size(n_ref: int, n_cur: int) -> float:
    return n_ref * n_cur / (n_ref + n_cur)


def _chi2_noise(method: str, bins: int, n_eff: float) -> tuple[float, float]:
    """(floor, margin) of a binned divergence for a healthy window: the chi-square mean
    and its NULL_QUANTILE's distance above the mean, in the divergence's units."""
    dof = max(bins - 1, 1)
    scale = CHI2_SCALE[method] * n_eff
    return dof / scale, (float(chi2.ppf(NULL_QUANTILE, dof)) - dof) / scale


def _bridge_integral(values: np.ndarray, weights: np.ndarray) -> float:
    """The integral of sqrt(F (1 - F)) dx over the reference's distribution (`values`
    sorted, each with its weight): the Brownian-bridge mean, before sqrt(2 / pi)."""
    cdf = np.cumsum(weights)[:-1] / weights.sum()
    return float(np.sum(np.sqrt(cdf * (1 - cdf)) * np.diff(values)))


def _wasserstein_noise(bridge: float, std: float, n_eff: float) -> tuple[float, float]:
    """(floor, margin) of the normed Wasserstein distance for a healthy window."""
    floor = np.sqrt(2 / np.pi) * bridge / std / np.sqrt(n_eff)
    return float(floor), float((WASSERSTEIN_TAIL - 1) * floor)


def _judged(
    method: str,
    raw: float,
    noise: tuple[float, float],
    threshold: float,
    n_ref: int,
    n_cur: int,
) -> DriftScore:
    """The score's excess over the noise floor and its verdict (see the module's
    docstring); `raw`, `noise` and `threshold` in the method's units, except for
    Jensen-Shannon, whose `raw` and `noise` are divergences against a distance
    threshold."""
    floor, margin = noise
    excess = max(raw - floor, 0.0)
    limit = threshold**2 if method == DriftMethod.JENSEN_SHANNON else threshold
    value = float(np.sqrt(excess)) if method == DriftMethod.JENSEN_SHANNON else float(excess)
    if excess >= limit and (margin < limit or excess > margin):
        verdict = DriftVerdict.DRIFT
    elif margin < limit:
        verdict = DriftVerdict.NO_DRIFT
    else:  # too small a window to tell healthy traffic from a drift this size
        return _score(method, None, threshold, n_ref, n_cur)
    return DriftScore(method, value, threshold, verdict, n_ref, n_cur)


def _score(method: str, value: float | None, threshold: float, n_ref: int, n_cur: int):
    if value is None:
        verdict = DriftVerdict.NOT_ENOUGH_DATA
    else:
        verdict = DriftVerdict.DRIFT if value >= threshold else DriftVerdict.NO_DRIFT
    return DriftScore(method, value, threshold, verdict, n_ref, n_cur)


def min_conclusive_samples(
    *, method: str, bins: int = N_BINS, threshold: float | None = None, bridge: float = 1.61
) -> float:
    """The effective sample size n_eff = n m / (n + m) from which a healthy window's
    score stays below `threshold` in NULL_QUANTILE of windows, so "no drift" can be
    said. Binned methods: from the bin count; normed Wasserstein: from the reference's
    shape, `bridge` being the integral of sqrt(F (1 - F)) over its standard deviation
    (1.61 for a normal distribution). For n serving values against m reference ones,
    n = n_eff m / (m - n_eff)."""
    threshold = THRESHOLDS[method] if threshold is None else threshold
    if method == DriftMethod.WASSERSTEIN:
        return float(((WASSERSTEIN_TAIL - 1) * np.sqrt(2 / np.pi) * bridge / threshold) ** 2)
    limit = threshold**2 if method == DriftMethod.JENSEN_SHANNON else threshold
    _, margin = _chi2_noise(method, bins, 1.0)
    return margin / limit


def histogram_drift(
    *,
    centres: Sequence[float],
    reference_counts: Sequence[float],
    current_counts: Sequence[float],
    method: str,
    threshold: float | None = None,
    min_samples: int = MIN_SAMPLES,
) -> DriftScore:
    """Drift between two histograms over the same bins (`centres` give each bin's value,
    used by Wasserstein, in increasing order). Counts, not shares: the totals decide
    "not enough data" and the noise floor. The value is the excess over the floor
    (module docstring); ValueError for mismatched bins, negative counts or an unknown
    method."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    if ref.shape != cur.shape or ref.shape != (len(centres),):
        raise ValueError("Both histograms need one count per bin.")
    if (ref < 0).any() or (cur < 0).any():
        raise ValueError("Counts are never negative.")
    threshold = THRESHOLDS[method] if threshold is None else threshold
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_ref < min_samples or n_cur < min_samples:
        return _score(method, None, threshold, n_ref, n_cur)
    n_eff = _effective_size(n_ref, n_cur)
    if method == DriftMethod.WASSERSTEIN:
        values = np.asarray(centres, dtype=float)
        mean = np.average(values, weights=ref)
        std = float(np.sqrt(np.average((values - mean) ** 2, weights=ref)))
        distance = wasserstein_distance(values, values, ref, cur)
        if std <= 0:
            return _score(method, float(distance > 0) * np.inf, threshold, n_ref, n_cur)
        noise = _wasserstein_noise(_bridge_integral(values, ref), std, n_eff)
        return _judged(method, float(distance / std), noise, threshold, n_ref, n_cur)
    ref, cur = _pooled_sparse_bins(ref, cur)
    bins = len(ref)
    if method == DriftMethod.JENSEN_SHANNON:
        raw = float(jensenshannon(ref / n_ref, cur / n_cur)) ** 2
    elif method == DriftMethod.PSI:
        raw = _psi(_shares(ref), _shares(cur))
    elif method == DriftMethod.KL:
        raw = _kl(_shares(ref), _shares(cur))
    else:
        raise ValueError(f"No drift method {method!r}.")
    return _judged(method, raw, _chi2_noise(method, bins, n_eff), threshold, n_ref, n_cur)


def sample_drift(
    *,
    reference: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    method: str,
    threshold: float | None = None,
    min_samples: int = MIN_SAMPLES,
) -> DriftScore:
    """Drift between two samples of a numeric feature. Wasserstein reads the raw
    values; PSI, KL and Jensen-Shannon bin both samples on 30 common bins. The value is
    the excess over the noise floor of two samples these sizes (module docstring)."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    threshold = THRESHOLDS[method] if threshold is None else threshold
    if len(ref) < min_samples or len(cur) < min_samples:
        return _score(method, None, threshold, len(ref), len(cur))
    if method == DriftMethod.WASSERSTEIN:
        std = float(np.std(ref))
        distance = float(wasserstein_distance(ref, cur))
        if std <= 0:
            return _score(method, np.inf if distance > 0 else 0.0, threshold, len(ref), len(cur))
        ordered = np.sort(ref)
        noise = _wasserstein_noise(
            _bridge_integral(ordered, np.ones_like(ordered)),
            std,
            _effective_size(len(ref), len(cur)),
        )
        return _judged(method, distance / std, noise, threshold, len(ref), len(cur))
    low, high = min(ref.min(), cur.min()), max(ref.max(), cur.max())
    edges = np.linspace(low, high, N_BINS + 1) if high > low else np.array([low - 0.5, low + 0.5])
    ref_counts, _ = np.histogram(ref, bins=edges)
    cur_counts, _ = np.histogram(cur, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    return histogram_drift(
        centres=centres,
        reference_counts=ref_counts,
        current_counts=cur_counts,
        method=method,
        threshold=threshold,
        min_samples=min_samples,
    )


def category_drift(
    *,
    reference: dict[str, float],
    current: dict[str, float],
    method: str = DriftMethod.JENSEN_SHANNON,
    threshold: float | None = None,
    min_samples: int = MIN_SAMPLES,
) -> DriftScore:
    """Drift between the category counts of a categorical feature (Jensen-Shannon by
    default, as Evidently); a category seen on one side only counts zero on the other."""
    if method == DriftMethod.WASSERSTEIN:
        raise ValueError("Wasserstein needs ordered values, not categories.")
    names = sorted(set(reference) | set(current))
    return histogram_drift(
        centres=list(range(len(names))),
        reference_counts=[reference.get(n, 0) for n in names],
        current_counts=[current.get(n, 0) for n in names],
        method=method,
        threshold=threshold,
        min_samples=min_samples,
    )

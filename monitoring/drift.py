"""Drift between a version's training reference and what it serves, per feature.

The statistics are scipy's; the defaults are Evidently's (its `DataDriftPreset`):
numeric columns by the normed Wasserstein distance (the distance divided by the
reference's standard deviation), categorical ones by the Jensen-Shannon distance, PSI
and KL divergence over 30 bins laid on both samples together, empty bins replaced by
0.0001 so that the logarithms stay finite; every threshold 0.1. A window with fewer
than MIN_SAMPLES values on either side gets "not enough data", never a verdict: a few
dozen requests at night say nothing about drift.

Serving metrics arrive as Prometheus histograms (counts per bucket), so every method
also works from counts over shared bucket edges.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from monitoring.choices import DriftMethod, DriftVerdict

MIN_SAMPLES = 100
N_BINS = 30
EMPTY_BIN = 0.0001
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
    shares = counts / counts.sum()
    shares = np.where(shares == 0, EMPTY_BIN, shares)
    return shares / shares.sum()


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _kl(ref: np.ndarray, cur: np.ndarray) -> float:
    # KL(reference || current), as Evidently orders it.
    return float(np.sum(ref * np.log(ref / cur)))


def _score(method: str, value: float | None, threshold: float, n_ref: int, n_cur: int):
    if value is None:
        verdict = DriftVerdict.NOT_ENOUGH_DATA
    else:
        verdict = DriftVerdict.DRIFT if value >= threshold else DriftVerdict.NO_DRIFT
    return DriftScore(method, value, threshold, verdict, n_ref, n_cur)


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
    used by Wasserstein). Counts, not shares: the totals decide "not enough data"."""
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
    if method == DriftMethod.WASSERSTEIN:
        values = np.asarray(centres, dtype=float)
        mean = np.average(values, weights=ref)
        std = float(np.sqrt(np.average((values - mean) ** 2, weights=ref)))
        distance = wasserstein_distance(values, values, ref, cur)
        value = float(distance / std) if std > 0 else float(distance > 0) * np.inf
    elif method == DriftMethod.JENSEN_SHANNON:
        value = float(jensenshannon(ref / n_ref, cur / n_cur))
    elif method == DriftMethod.PSI:
        value = _psi(_shares(ref), _shares(cur))
    elif method == DriftMethod.KL:
        value = _kl(_shares(ref), _shares(cur))
    else:
        raise ValueError(f"No drift method {method!r}.")
    return _score(method, value, threshold, n_ref, n_cur)


def sample_drift(
    *,
    reference: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    method: str,
    threshold: float | None = None,
    min_samples: int = MIN_SAMPLES,
) -> DriftScore:
    """Drift between two samples of a numeric feature. Wasserstein reads the raw
    values; PSI, KL and Jensen-Shannon bin both samples on 30 common bins."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    threshold = THRESHOLDS[method] if threshold is None else threshold
    if len(ref) < min_samples or len(cur) < min_samples:
        return _score(method, None, threshold, len(ref), len(cur))
    if method == DriftMethod.WASSERSTEIN:
        std = float(np.std(ref))
        distance = float(wasserstein_distance(ref, cur))
        value = distance / std if std > 0 else (np.inf if distance > 0 else 0.0)
        return _score(method, float(value), threshold, len(ref), len(cur))
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

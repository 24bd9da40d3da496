"""Drift computation time per serving window, printed as a table.

    python bench/monitoring.py [--samples 1000000] [--reference 200000] [--repeat 3]

Each method scores one feature: a reference sample (the training data) against a
serving sample of the given size, raw values for normed Wasserstein, 30 common bins for
PSI, Jensen-Shannon and KL; and the same from Prometheus-style histograms (the form
serving metrics arrive in). The best of `--repeat` runs is shown.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from monitoring.choices import DriftMethod
    from monitoring.drift import histogram_drift, sample_drift

    rng = np.random.default_rng(0)
    reference = rng.normal(100, 15, args.reference)
    current = rng.normal(103, 15, args.samples)
    edges = np.linspace(0, 200, 41)
    centres = (edges[:-1] + edges[1:]) / 2
    print(f"{'method':<16}{'raw samples s':>16}{'histogram s':>14}{'value':>10}")
    total = 0.0
    for method in DriftMethod.values:
        best_raw = best_hist = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            score = sample_drift(reference=reference, current=current, method=method)
            best_raw = min(best_raw, time.perf_counter() - started)
            started = time.perf_counter()
            histogram_drift(
                centres=centres,
                reference_counts=np.histogram(reference, bins=edges)[0],
                current_counts=np.histogram(current, bins=edges)[0],
                method=method,
            )
            best_hist = min(best_hist, time.perf_counter() - started)
        total += best_raw
        print(f"{method:<16}{best_raw:>16.3f}{best_hist:>14.3f}{score.value:>10.4f}")
    print(f"all four methods on {args.samples:,} serving samples: {total:.3f} s (goal < 2 s)")


if __name__ == "__main__":
    main()

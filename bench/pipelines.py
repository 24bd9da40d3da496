"""Time and peak memory of generating the sample data and of each model's pipeline at
several data sizes, printed as a table.

    python bench/pipelines.py [--sizes 10000,100000,1000000] [--seed 0]

Each measurement runs in a fresh process, so its peak resident memory (ru_maxrss) is its
own; "extra MB" is that peak minus the process's size after the imports.
"""

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its own name would
# hide the pipelines package: put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

KINDS = ("forecasting", "segmentation", "recommendation")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _measure(task: str, size: int, seed: int, lake: str, artifacts: str, out) -> None:
    from pipelines.sample_data import ensure_sample_snapshot
    from pipelines.steps import run_pipeline

    baseline = _peak_mb()
    started = time.perf_counter()
    if task == "generate":
        snapshot = ensure_sample_snapshot(root=lake, seed=seed, n_transactions=size)
        counts = snapshot.row_counts
        detail = f"{counts['customers']:,} customers, {counts['products']} products"
    else:
        snapshot = ensure_sample_snapshot(root=lake, seed=seed, n_transactions=size)
        started = time.perf_counter()  # the snapshot exists: this only finds it
        result = run_pipeline(
            model_kind=task, lake_root=lake, artifact_root=artifacts, snapshot_id=snapshot.id
        )
        rule = {
            "forecasting": ("mape", "baseline_mape"),
            "segmentation": ("silhouette", "n_segments"),
            "recommendation": ("hit_rate_at_k", "baseline_hit_rate_at_k"),
        }[task]
        detail = ", ".join(f"{name} {result.metrics[name]:.3f}" for name in rule)
    elapsed = time.perf_counter() - started
    out.put((elapsed, _peak_mb(), _peak_mb() - baseline, detail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="transactions, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    context = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pipelines-bench-") as scratch:
        for size in sizes:
            lake, artifacts = f"{scratch}/lake-{size}", f"{scratch}/artifacts"
            for task in ("generate", *KINDS):
                queue = context.Queue()
                process = context.Process(
                    target=_measure, args=(task, size, args.seed, lake, artifacts, queue)
                )
                process.start()
                result = queue.get()
                process.join()
                rows.append((size, task, *result))
                print(f"  {size:>9,} {task:<15} {result[0]:7.2f}s", file=sys.stderr, flush=True)
    header = (
        f"{'transactions':>12}  {'step':<15} {'seconds':>8} {'peak MB':>8} {'extra MB':>9}  result"
    )
    print(header)
    print("-" * len(header))
    for size, task, seconds, peak, extra, detail in rows:
        print(f"{size:>12,}  {task:<15} {seconds:8.2f} {peak:8.0f} {extra:9.0f}  {detail}")
    for size in sizes:
        total = sum(r[2] for r in rows if r[0] == size)
        print(f"{size:>12,}  {'all four':<15} {total:8.2f}")


if __name__ == "__main__":
    main()

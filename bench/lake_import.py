"""Time and peak memory of `lake_import` on a transactions CSV against the floor: pyarrow's
own CSV reader streaming the same file into Parquet, with no checks.

    python bench/lake_import.py [--sizes 1000000,10000000] [--keep] [--gcs]

The CSV is written once per size (client column names, clean rows). Each measurement runs
in a fresh process, so its peak resident memory (ru_maxrss) is its own. Goal: the import
within 1.5x the floor's time, and under 1 GiB of peak memory for 10M rows.

With --gcs the same file is also imported from `gs://` (the Cloud Storage stand-in of
the tests, on this machine, through google-cloud-storage): the download streams to
disk, so its peak memory should stay that of the local import.
"""

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

HEADER = "InvoiceNo,InvoiceDate,Customer,SKU,Qty,Price,Total,Promo,Channel\n"
MAPPING = (
    "InvoiceNo=transaction_id,InvoiceDate=ts,Customer=customer_id,SKU=product_id,"
    "Qty=quantity,Price=unit_price,Total=amount,Promo=promotion,Channel=channel"
)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_csv(path: Path, rows: int) -> None:
    """A clean transactions export of `rows` lines, written in blocks."""
    import numpy as np

    rng = np.random.default_rng(0)
    block = 500_000
    with open(path, "w") as handle:
        handle.write(HEADER)
        for start in range(0, rows, block):
            n = min(block, rows - start)
            ids = np.arange(start + 1, start + n + 1)
            day = rng.integers(0, 700, n)
            seconds = rng.integers(8 * 3600, 20 * 3600, n)
            ts = np.datetime64("2023-01-01") + day.astype("timedelta64[D]")
            ts = ts.astype("datetime64[s]") + seconds.astype("timedelta64[s]")
            quantity = rng.integers(1, 6, n)
            price = np.round(rng.uniform(0.5, 50, n), 2)
            lines = [
                f"{i},{str(t).replace('T', ' ')},C{c:06d},P{p:05d},{q},{u:.2f},{q * u:.2f},"
                f"{'true' if promo else 'false'},{'online' if web else 'store'}\n"
                for i, t, c, p, q, u, promo, web in zip(
                    ids,
                    ts,
                    rng.integers(0, 200_000, n),
                    rng.integers(0, 5_000, n),
                    quantity,
                    price,
                    rng.random(n) < 0.1,
                    rng.random(n) < 0.3,
                    strict=True,
                )
            ]
            handle.writelines(lines)


def _floor(csv: str, out_dir: str, queue) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    baseline = _peak_mb()
    started = time.perf_counter()
    reader = pacsv.open_csv(csv, read_options=pacsv.ReadOptions(block_size=16 << 20))
    writer = None
    rows = 0
    for batch in reader:
        if writer is None:
            writer = pq.ParquetWriter(f"{out_dir}/floor.parquet", batch.schema, compression="zstd")
        writer.write_batch(batch)
        rows += batch.num_rows
    writer.close()
    queue.put((time.perf_counter() - started, _peak_mb(), _peak_mb() - baseline, rows))


def _import(csv: str, out_dir: str, queue) -> None:
    from pipelines.importer import ImportSource, import_files, parse_mapping

    baseline = _peak_mb()
    started = time.perf_counter()
    result = import_files(
        root=f"{out_dir}/lake",
        sources=[ImportSource("transactions", csv)],
        mapping={"transactions": parse_mapping(MAPPING)},
    )
    rows = result.snapshot.row_counts["transactions"]
    queue.put((time.perf_counter() - started, _peak_mb(), _peak_mb() - baseline, rows))


def _import_gcs(uri: str, out_dir: str, queue) -> None:
    from pipelines.importer import parse_mapping
    from pipelines.sources import import_uris

    baseline = _peak_mb()
    started = time.perf_counter()
    result = import_uris(
        root=f"{out_dir}/lake",
        items=[("transactions", uri)],
        mapping={"transactions": parse_mapping(MAPPING)},
    )
    rows = result.snapshot.row_counts["transactions"]
    queue.put((time.perf_counter() - started, _peak_mb(), _peak_mb() - baseline, rows))


def _run(target, *args) -> tuple:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    found = queue.get()
    process.join()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="rows, comma-separated")
    parser.add_argument("--dir", default="", help="where to write the CSVs (default: a temp dir)")
    parser.add_argument("--gcs", action="store_true", help="also import it from gs://")
    args = parser.parse_args()
    storage = None
    if args.gcs:
        import os

        from tests.fakes.storage_server import FakeStorageServer

        storage = FakeStorageServer().start()
        storage.add_bucket("bench-exports")
        os.environ["GCS_API_ENDPOINT"] = storage.url  # the spawned processes inherit it
    folder = Path(args.dir or tempfile.mkdtemp(prefix="lake-import-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'rows':>11} {'CSV MB':>7} | {'what':<7} {'seconds':>8} {'peak MB':>8} {'extra MB':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        csv = folder / f"transactions-{size}.csv"
        if not csv.exists():
            partial = csv.with_suffix(".partial")
            write_csv(partial, size)
            partial.rename(csv)  # an interrupted run leaves no short file behind
        mb = csv.stat().st_size / 2**20
        results = {}
        runs = [("floor", _floor, str(csv)), ("import", _import, str(csv))]
        if storage is not None:
            uri = f"gs://bench-exports/{csv.name}"
            storage.put(uri, csv.read_bytes())
            runs.append(("gs://", _import_gcs, uri))
        for name, target, source in runs:
            with tempfile.TemporaryDirectory(dir=folder) as out:
                seconds, peak, extra, rows = _run(target, source, out)
            results[name] = seconds
            print(f"{rows:>11,} {mb:>7.0f} | {name:<7} {seconds:>8.2f} {peak:>8.0f} {extra:>8.0f}")
        print(f"{'':>11} {'':>7} | import / floor: {results['import'] / results['floor']:.2f}x")
        if storage is not None:
            storage.buckets["bench-exports"].clear()


if __name__ == "__main__":
    main()

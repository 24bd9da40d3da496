"""One access request and one erasure across every local source, against the floor:
the same reads and rewrites of the same files with nothing around them.

    python bench/dsar.py [--transactions 1000000] [--customers 10000 100000] [--repeat 3]

Per size: the pipelines' sample lake (`--transactions` rows, or 25 per customer with
`--customers`) and its customers, the demo's CRM as a SQLite file built from them, and
a prediction log of two lines per customer over three days (segmentation and
recommendation, as the model server writes them). One person, present everywhere.

The portal's side is what the workers do for one request of each kind, source by
source: find the person's customer ids once, run each source's task with its evidence
file (access: find; erasure: the lake's lineage search over every snapshot, the CRM's
DELETEs and verification, the prediction log rewritten without the person's lines,
the ledger's payloads redacted), build the access package or put the person on the
suppression list; then the lake rewrite the next training run does, the snapshot
without the person (`pipelines.steps.snapshot_without_suppressed`).

The floor per source: pyarrow reading the same Parquet files filtering the person
(access, lineage), reading them whole and writing them again without the person
(the rewrite), the same SQL on the CRM, a byte scan or rewrite of the log files. The
portal's own records have no floor but themselves: their time counts in the portal's
total only. Each lake rewrite runs in a process of its own, so its peak memory (RSS,
and pyarrow's allocator peak) is that of the rewrite; the baseline is the RSS of that
process before it reads anything; its CPU time (every thread of that process) is
printed too, a figure that depends less on the machine's load than the wall clock.
Uses its own SQLite database in a temporary folder. Prints the best of `--repeat`
runs of each row; the figures are this machine's.
"""

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sqlite3
import subprocess  # nosec B404  # runs this script again, with fixed arguments
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_DAYS = ("2026-11-26", "2026-11-27", "2026-11-28")


def write_prediction_log(root: Path, customer_ids: list[str]) -> int:
    """Two lines per customer (a segment, recommendations), spread over three days."""
    shutil.rmtree(root, ignore_errors=True)
    lines = 0
    for model, body in (
        (
            "customer-segmentation",
            lambda c: {"customer_id": c, "segment": zlib.crc32(c.encode()) % 5},
        ),
        ("product-recommendation", lambda c: {"customer_id": c, "items": ["P00001", "P00002"]}),
    ):
        folder = root / model
        folder.mkdir(parents=True, exist_ok=True)
        handles = {day: (folder / f"{day}.jsonl").open("w") for day in LOG_DAYS}
        for n, customer in enumerate(customer_ids):
            day = LOG_DAYS[n % len(LOG_DAYS)]
            handles[day].write(
                json.dumps(
                    {
                        "ts": f"{day}T12:00:00.000000Z",
                        "request_id": f"{n:032x}",
                        "model": model,
                        "version": "1.0.0",
                        "track": "stable",
                        "key": customer,
                        "customer_id": customer,
                        "inputs": {"customer_id": customer},
                        "prediction": body(customer),
                    },
                    separators=(",", ":"),
                )
                + "\n"
            )
            lines += 1
        for handle in handles.values():
            handle.close()
    return lines


# --- the floor ---------------------------------------------------------------------------


def floor_ids(lake: Path, crm: Path, email: str) -> list[str]:
    """The person's customer ids: the lake's customers and the CRM's contacts."""
    import pyarrow.parquet as pq

    from pipelines.lake import open_snapshot

    snapshot = open_snapshot(root=lake)
    people = pq.read_table(
        snapshot.path / snapshot.tables["customers"]["file"],
        filters=[("email", "=", email)],
        columns=["customer_id"],
    )
    ids = {str(v) for v in people.column(0).to_pylist()}
    with sqlite3.connect(crm) as db:
        ids |= {
            r[0]
            for r in db.execute("SELECT customer_id FROM crm_contacts WHERE email = ?", (email,))
        }
    return sorted(ids)


def floor_lake_find(lake: Path, ids: list[str], *, every_snapshot: bool = False) -> int:
    """Rows of the person in the newest snapshot (or in every one), read with filters."""
    import pyarrow.parquet as pq

    from pipelines.lake import list_snapshots, open_snapshot

    snapshots = list_snapshots(root=lake) if every_snapshot else [open_snapshot(root=lake)]
    rows = 0
    for snapshot in snapshots:
        for name in ("customers", "transactions"):
            rows += pq.read_table(
                snapshot.path / snapshot.tables[name]["file"],
                filters=[("customer_id", "in", ids)],
            ).num_rows
    return rows


def floor_crm_find(crm: Path, email: str, ids: list[str]) -> int:
    with sqlite3.connect(crm) as db:
        rows = len(db.execute("SELECT * FROM crm_contacts WHERE email = ?", (email,)).fetchall())
        marks = ", ".join("?" * len(ids))
        rows += len(
            db.execute(
                f"SELECT * FROM crm_interactions WHERE customer_id IN ({marks})",  # noqa: S608  # nosec B608  # placeholders only
                ids,
            ).fetchall()
        )
    return rows


def floor_crm_erase(crm: Path, email: str, ids: list[str]) -> int:
    marks = ", ".join("?" * len(ids))
    with sqlite3.connect(crm) as db:
        rows = db.execute(
            f"DELETE FROM crm_interactions WHERE customer_id IN ({marks})",  # noqa: S608  # nosec B608  # placeholders only
            ids,
        ).rowcount
        rows += db.execute("DELETE FROM crm_contacts WHERE email = ?", (email,)).rowcount
    return rows


def floor_log_find(log: Path, ids: list[str]) -> int:
    needles = [json.dumps(i).encode() for i in ids]
    rows = 0
    for path in sorted(log.glob("*/*.jsonl")):
        with path.open("rb") as handle:
            rows += sum(1 for line in handle if any(n in line for n in needles))
    return rows


def floor_log_erase(log: Path, ids: list[str]) -> int:
    needles = [json.dumps(i).encode() for i in ids]
    rows = 0
    for path in sorted(log.glob("*/*.jsonl")):
        staging = path.with_name(f".{path.name}.new")
        with path.open("rb") as handle, staging.open("wb") as out:
            for line in handle:
                if any(n in line for n in needles):
                    rows += 1
                else:
                    out.write(line)
        os.replace(staging, path)
    return rows


# --- the lake rewrite, each side in a process of its own -------------------------------


def _memory() -> dict[str, float]:
    """This process's peak and current RSS and pyarrow's allocator peak, in MiB. The
    peak is /proc's VmHWM: getrusage's ru_maxrss survives exec on Linux, so a child
    would report the size of the process that started it."""
    import pyarrow as pa

    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    kib = {key: int(status[key].split()[0]) for key in ("VmHWM", "VmRSS")}
    return {
        "rss_mib": kib["VmHWM"] / 1024,
        "now_mib": kib["VmRSS"] / 1024,
        "arrow_mib": pa.default_memory_pool().max_memory() / 2**20,
    }


def rewrite_child(side: str, lake: Path, out: Path, suppression: Path, ids: list[str]) -> None:
    """Run one side's lake rewrite and print {seconds, rows_removed, memory} as JSON."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.lake import open_snapshot

    if side == "portal":
        # What a training run has loaded when it takes its snapshot (pandas, the models).
        from pipelines.steps import RunContext, snapshot_without_suppressed

    snapshot = open_snapshot(root=lake)
    baseline = _memory()["now_mib"]
    started, cpu_started = time.perf_counter(), time.process_time()
    if side == "portal":
        ctx = RunContext(
            model_kind="segmentation",
            lake_root=out,
            artifact_root=out / "artifacts",
            suppression_path=suppression,
        )
        ctx.snapshot = snapshot
        derived = snapshot_without_suppressed(ctx)
        removed = sum(derived.source.get("suppressed", {}).get("rows_removed", {}).values())
    else:
        out.mkdir(parents=True, exist_ok=True)
        removed = 0
        value_set = pa.array(ids, pa.large_string())
        for info in snapshot.tables.values():
            table = pq.read_table(snapshot.path / info["file"])
            if "customer_id" in table.column_names:
                drop = pc.is_in(table.column("customer_id"), value_set=value_set)
                removed += pc.sum(drop).as_py() or 0
                table = table.filter(pc.invert(drop))
            pq.write_table(table, out / info["file"], compression="zstd")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # every thread of this process
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "rows_removed": removed,
                "baseline_mib": baseline,
                **_memory(),
            }
        )
    )


def rewrite_run(side: str, lake: Path, out: Path, suppression: Path, ids: list[str]) -> dict:
    """One side's rewrite in a process of its own, which gets the suppression list's
    hashing key as a training job does: from its environment."""
    from datasubjects.pseudonyms import suppression_key

    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(  # nosec B603  # this interpreter, this script, our own arguments
        [
            sys.executable,
            __file__,
            "--rewrite-child",
            side,
            str(lake),
            str(out),
            str(suppression),
            ",".join(ids),
        ],
        check=False,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DSAR_SUPPRESSION_KEY": suppression_key().hex(),
        },
    )
    if done.returncode:
        raise SystemExit(f"the {side} lake rewrite failed:\n{done.stderr}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the benchmark -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, nargs="+", default=None)
    parser.add_argument(
        "--customers", type=int, nargs="+", default=None, help="sizes as customers (x25 rows)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="print where the portal's access spends its time"
    )
    parser.add_argument("--rewrite-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Before this folder (which has a pipelines.py of its own benchmarks) on the path.
    sys.path.insert(0, str(ROOT))
    if args.rewrite_child:
        side, lake, out, suppression, ids = args.rewrite_child
        rewrite_child(side, Path(lake), Path(out), Path(suppression), ids.split(","))
        return
    sizes = list(args.transactions or [])
    sizes += [c * 25 for c in args.customers or []]
    sizes = sizes or [1_000_000]
    var = Path(tempfile.mkdtemp(prefix="portal-bench-dsar-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "PORTAL_VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3",
            "CELERY_BROKER_URL": "memory://",
            "DSAR_FILES_DIR": str(var / "datasubjects"),
            "DSAR_SUPPRESSION_LIST": str(var / "suppression.json"),
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for size in sizes:
        bench_size(var, size, args.repeat, args.profile)
    shutil.rmtree(var, ignore_errors=True)


def bench_size(var: Path, size: int, repeat: int, profile: bool) -> None:
    from django.db import transaction
    from django.utils import timezone

    from datasubjects.choices import LookupKey, RequestKind, RequestState, SourceKind
    from datasubjects.models import DataSource, DataSubjectRequest, Suppression
    from datasubjects.pseudonyms import subject_ref_for
    from datasubjects.sample_crm import sample_crm_create
    from datasubjects.services import (
        access_package_build,
        request_suppress,
        source_task_run,
        source_tasks_create,
    )
    from datasubjects.services.sources import request_customers_resolve
    from datasubjects.services.suppression import suppression_list_path
    from pipelines.sample_data import ensure_sample_snapshot
    from portal.audit.actors import Actor

    lake, crm, log = var / f"lake-{size}", var / f"crm-{size}.sqlite3", var / f"log-{size}"
    snapshot = ensure_sample_snapshot(root=lake, seed=0, n_transactions=size)
    customers = snapshot.load(["customers"], verify=False)["customers"]
    customer_ids = [str(c) for c in customers["customer_id"]]
    crm_config = sample_crm_create(url=f"sqlite:///{crm}", customers=customers)
    lines = write_prediction_log(log, customer_ids)
    DataSubjectRequest.objects.all().delete()  # and their tasks
    DataSource.objects.all().delete()
    Suppression.objects.all().delete()
    for slug, kind, key, config in (
        (
            "lake",
            SourceKind.LAKE,
            LookupKey.CUSTOMER_ID,
            {
                "root": str(lake),
                "tables": {"customers": "customer_id", "transactions": "customer_id"},
                "person_table": "customers",
                "email_column": "email",
            },
        ),
        ("crm", SourceKind.SQL, LookupKey.EMAIL, crm_config),
        ("predictions", SourceKind.PREDICTION_LOG, LookupKey.CUSTOMER_ID, {"root": str(log)}),
        ("portal", SourceKind.PORTAL, LookupKey.EMAIL, {}),
    ):
        DataSource.objects.create(slug=slug, name=slug, kind=kind, lookup_key=key, config=config)
    email = str(customers["email"].iloc[len(customers) // 2])
    print(
        f"\n{len(customers):,} customers, {snapshot.tables['transactions']['rows']:,} "
        f"transactions, {lines:,} prediction log lines; best of {repeat}"
    )
    times: dict[tuple[str, str], list[float]] = defaultdict(list)  # (row, side) -> seconds
    rows: dict[str, int] = {}
    memory: dict[str, dict] = {}
    cpu: dict[str, list[float]] = defaultdict(list)  # side -> the rewrite's CPU seconds

    def timed(row: str, side: str, work):
        started = time.perf_counter()
        result = work()
        times[row, side].append(time.perf_counter() - started)
        return result

    def new_request(kind: str) -> DataSubjectRequest:
        return DataSubjectRequest.objects.create(
            kind=kind,
            email=email,
            subject_ref=subject_ref_for(email),
            state=RequestState.IN_PROGRESS,
            verified_at=timezone.now(),
            received_on=timezone.localdate(),
            due_on=timezone.localdate(),
        )

    def run_tasks(tasks, action: str) -> dict[str, int]:
        found = {}
        for task in tasks:
            run = timed(
                f"{action}: {task.source.slug}",
                "portal",
                lambda t=task: source_task_run(task_id=t.pk),
            )
            if run.task.state not in ("done", "awaiting_person"):
                raise SystemExit(f"{task.source.slug}: {run.task.error}")
            found[task.source.slug] = run.task.rows_found or 0
        return found

    for _ in range(repeat):
        # Access: the portal, then the floor (the erasures below change the CRM and
        # the log: each repeat starts from fresh copies).
        sample_crm_create(url=f"sqlite:///{crm}", customers=customers)
        write_prediction_log(log, customer_ids)
        request = new_request(RequestKind.ACCESS)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        with transaction.atomic():
            tasks = timed(
                "access: tasks, package",
                "portal",
                lambda r=request: source_tasks_create(request=r, actor=Actor.system("bench")),
            )
        ids = timed("access: ids", "portal", lambda r=request: request_customers_resolve(request=r))
        found = run_tasks(tasks, "access")
        started = time.perf_counter()
        access_package_build(request=request)
        times["access: tasks, package", "portal"][-1] += time.perf_counter() - started
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        person = list(ids)
        floor = {
            "ids": timed("access: ids", "floor", lambda: floor_ids(lake, crm, email)),
            "lake": timed("access: lake", "floor", lambda p=person: floor_lake_find(lake, p)),
            "crm": timed("access: crm", "floor", lambda p=person: floor_crm_find(crm, email, p)),
            "predictions": timed(
                "access: predictions", "floor", lambda p=person: floor_log_find(log, p)
            ),
        }
        for slug in ("lake", "crm", "predictions"):
            if found[slug] != floor[slug]:
                raise SystemExit(
                    f"access {slug}: the portal found {found[slug]}, the floor {floor[slug]}"
                )
            rows[f"access: {slug}"] = found[slug]
        if sorted(ids) != floor["ids"]:
            raise SystemExit(f"ids: the portal found {ids}, the floor {floor['ids']}")

        # Erasure: the portal, on fresh copies of the CRM and the log; then the floor,
        # on fresh copies again. The lake rewrite writes beside the lake, never in it.
        sample_crm_create(url=f"sqlite:///{crm}", customers=customers)
        write_prediction_log(log, customer_ids)
        Suppression.objects.all().delete()
        request = new_request(RequestKind.ERASURE)
        with transaction.atomic():
            tasks = timed(
                "erasure: tasks, suppression",
                "portal",
                lambda r=request: source_tasks_create(request=r, actor=Actor.system("bench")),
            )
        timed("erasure: ids", "portal", lambda r=request: request_customers_resolve(request=r))
        found = run_tasks(tasks, "erasure")
        started = time.perf_counter()
        request_suppress(request=request)
        times["erasure: tasks, suppression", "portal"][-1] += time.perf_counter() - started
        portal_rewrite = rewrite_run(
            "portal", lake, var / "rewrite-portal", suppression_list_path(), list(ids)
        )
        times["erasure: lake rewrite", "portal"].append(portal_rewrite["seconds"])
        memory["portal"] = portal_rewrite
        cpu["portal"].append(portal_rewrite["cpu_seconds"])
        sample_crm_create(url=f"sqlite:///{crm}", customers=customers)
        write_prediction_log(log, customer_ids)
        floor = {
            "ids": timed("erasure: ids", "floor", lambda: floor_ids(lake, crm, email)),
            "lake": timed(
                "erasure: lake",
                "floor",
                lambda p=person: floor_lake_find(lake, p, every_snapshot=True),
            ),
            "crm": timed("erasure: crm", "floor", lambda p=person: floor_crm_erase(crm, email, p)),
            "predictions": timed(
                "erasure: predictions", "floor", lambda p=person: floor_log_erase(log, p)
            ),
        }
        floor_rewrite = rewrite_run(
            "floor", lake, var / "rewrite-floor", suppression_list_path(), list(ids)
        )
        times["erasure: lake rewrite", "floor"].append(floor_rewrite["seconds"])
        memory["floor"] = floor_rewrite
        cpu["floor"].append(floor_rewrite["cpu_seconds"])
        for slug in ("lake", "crm", "predictions"):
            if found[slug] != floor[slug]:
                raise SystemExit(
                    f"erasure {slug}: the portal {found[slug]}, the floor {floor[slug]}"
                )
            rows[f"erasure: {slug}"] = found[slug]
        if portal_rewrite["rows_removed"] != floor_rewrite["rows_removed"]:
            raise SystemExit(f"rewrite: the portal {portal_rewrite}, the floor {floor_rewrite}")
        rows["erasure: lake rewrite"] = floor_rewrite["rows_removed"]

    print(f"{'':30} {'rows':>6} {'portal s':>9} {'floor s':>8} {'ratio':>7}")
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in dict.fromkeys(r for r, _ in times):
        portal = min(times[row, "portal"])
        floor_s = min(times[row, "floor"]) if (row, "floor") in times else None
        kind = row.split(":")[0]
        totals[kind][0] += portal
        totals[kind][1] += floor_s or 0.0
        ratio = f"{portal / floor_s:6.2f}x" if floor_s else "      -"
        shown = f"{floor_s:8.3f}" if floor_s is not None else "       -"
        print(f"{row:30} {rows.get(row, ''):>6} {portal:9.3f} {shown} {ratio}")
    for kind, (portal, floor_s) in totals.items():
        print(
            f"{kind + ' (total)':30} {'':>6} {portal:9.3f} {floor_s:8.3f} {portal / floor_s:6.2f}x"
        )
    print(
        f"lake rewrite CPU time (every thread, best of {repeat}): portal "
        f"{min(cpu['portal']):.3f} s, floor {min(cpu['floor']):.3f} s, "
        f"{min(cpu['portal']) / min(cpu['floor']):.2f}x"
    )
    for side in ("portal", "floor"):
        m = memory[side]
        print(
            f"lake rewrite, {side}: peak RSS {m['rss_mib']:.0f} MiB "
            f"(before reading {m['baseline_mib']:.0f} MiB), arrow allocator peak "
            f"{m['arrow_mib']:.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()

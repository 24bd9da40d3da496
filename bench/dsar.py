"""Time to answer an access request across every local source, against the floor: a
raw scan of the same files with the same predicates and no portal around it.

    python bench/dsar.py [--customers 10000 100000] [--repeat 3]

Per size: the pipelines' sample lake (25 transactions per customer), the demo's CRM as
a SQLite file built from the lake's customers, and a prediction log of two lines per
customer over three days (segmentation and recommendation, as the model server writes
them). The portal's side is what a worker does for one access request: find the
person's customer ids once, run the task of each source (lake, CRM, prediction log,
the portal's own records) with its evidence file, then build the access package. The
floor reads the same Parquet files with the same filters, runs the same SQL on the CRM
and scans the log files for the id, writing nothing. Uses its own SQLite database in a
temporary directory. Prints the best of `--repeat` runs of each; the figures are this
machine's.
"""

import argparse
import cProfile
import json
import os
import pstats
import sqlite3
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_DAYS = ("2026-11-26", "2026-11-27", "2026-11-28")


def write_prediction_log(root: Path, customer_ids: list[str]) -> int:
    """Two lines per customer (a segment, recommendations), spread over three days."""
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


def floor(lake: Path, crm: Path, log: Path, email: str) -> int:
    """The same reads with nothing around them: rows found."""
    import pyarrow.parquet as pq

    from pipelines.lake import open_snapshot

    snapshot = open_snapshot(root=lake)
    people = pq.read_table(
        snapshot.path / snapshot.tables["customers"]["file"], filters=[("email", "=", email)]
    )
    ids = [str(v) for v in people.column("customer_id").to_pylist()]
    rows = people.num_rows
    rows += pq.read_table(
        snapshot.path / snapshot.tables["transactions"]["file"],
        filters=[("customer_id", "in", ids)],
    ).num_rows
    with sqlite3.connect(crm) as db:
        rows += len(db.execute("SELECT * FROM crm_contacts WHERE email = ?", (email,)).fetchall())
        marks = ", ".join("?" * len(ids))
        rows += len(
            db.execute(
                f"SELECT * FROM crm_interactions WHERE customer_id IN ({marks})",  # noqa: S608  # nosec B608  # placeholders only
                ids,
            ).fetchall()
        )
    needles = [json.dumps(i).encode() for i in ids]
    for path in sorted(log.glob("*/*.jsonl")):
        with path.open("rb") as handle:
            rows += sum(1 for line in handle if any(n in line for n in needles))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="print where the portal's side spends its time"
    )
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="portal-bench-dsar-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "PORTAL_VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3",
            "CELERY_BROKER_URL": "memory://",
            "DSAR_FILES_DIR": str(var / "datasubjects"),
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from datasubjects.choices import LookupKey, RequestKind, RequestState, SourceKind
    from datasubjects.models import DataSource, DataSubjectRequest
    from datasubjects.pseudonyms import subject_ref_for
    from datasubjects.sample_crm import sample_crm_create
    from datasubjects.services import access_package_build, source_task_run, source_tasks_create
    from pipelines.sample_data import ensure_sample_snapshot
    from portal.audit.actors import Actor

    call_command("migrate", verbosity=0)
    print(
        f"{'customers':>10} {'transactions':>13} {'log lines':>10} {'rows':>6} "
        f"{'portal s':>9} {'floor s':>8} {'ratio':>6}"
    )
    for size in args.customers:
        lake, crm, log = var / f"lake-{size}", var / f"crm-{size}.sqlite3", var / f"log-{size}"
        snapshot = ensure_sample_snapshot(root=lake, seed=0, n_transactions=size * 25)
        customers = snapshot.load(["customers"], verify=False)["customers"]
        crm_config = sample_crm_create(url=f"sqlite:///{crm}", customers=customers)
        lines = write_prediction_log(log, [str(c) for c in customers["customer_id"]])
        DataSubjectRequest.objects.all().delete()  # and their tasks
        DataSource.objects.all().delete()
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
            DataSource.objects.create(
                slug=slug, name=slug, kind=kind, lookup_key=key, config=config
            )
        email = str(customers["email"].iloc[len(customers) // 2])
        portal_times, floor_times, rows = [], [], 0
        for _ in range(args.repeat):
            request = DataSubjectRequest.objects.create(
                kind=RequestKind.ACCESS,
                email=email,
                subject_ref=subject_ref_for(email),
                state=RequestState.IN_PROGRESS,
                verified_at=timezone.now(),
                received_on=timezone.localdate(),
                due_on=timezone.localdate(),
            )
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            with transaction.atomic():
                tasks = source_tasks_create(request=request, actor=Actor.system("bench"))
            found = 0
            for task in tasks:
                run = source_task_run(task_id=task.pk)
                if run.task.state != "done":
                    raise SystemExit(f"{task.source.slug}: {run.task.error}")
                if run.task.source.slug != "portal":
                    found += run.task.rows_found or 0
            access_package_build(request=request)
            portal_times.append(time.perf_counter() - started)
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            started = time.perf_counter()
            rows = floor(lake, crm, log, email)
            floor_times.append(time.perf_counter() - started)
            if rows != found:
                raise SystemExit(f"the portal found {found} rows, the floor {rows}")
        best_portal, best_floor = min(portal_times), min(floor_times)
        print(
            f"{len(customers):>10,} {snapshot.tables['transactions']['rows']:>13,} "
            f"{lines:>10,} {rows:>6} {best_portal:>9.3f} {best_floor:>8.3f} "
            f"{best_portal / best_floor:>5.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()

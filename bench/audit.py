"""The audit ledger's costs on PostgreSQL, each beside its floor.

    DATABASE_URL=postgres://user@host:5432/any python bench/audit.py \\
        [--append 2000] [--pack-events 0] [--verify 1000000] [--only verify ...]

Creates its own database on that server (`bench_audit_<pid>`), migrates it, and drops
it at the end. Prints:

- append: events/s through `audit_record` (one transaction each, the chain head locked,
  the hash computed, the payload row written) against plain INSERTs of the same rows
  into copies of the two tables with no chain (the floor), the two taking turns in
  blocks of APPEND_BLOCK events so both meet the same load; goal at least 0.5x.
- evidence packs: seconds for a model version's pack (two reviews, five decisions) and
  for the audit report of a 30-day period holding every event appended so far (the
  `--append` ones, the version's, and `--pack-events` more), each against
  WeasyPrint alone on the same HTML (the floor); goal within 1.2x.
- verify: seconds for `audit_chain_verify` over `--verify` events (written first with
  COPY, the chain computed in Python with the reference encoding) against SHA-256 over
  the same canonical bytes in a bare loop (the floor), and the time 1M events would take
  at that rate; goal under 30 s for 1M.

The figures are this machine's, on a server shared with whatever else runs on it.
"""

import argparse
import hashlib
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup(database: str) -> None:
    import tempfile

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # Files the portal writes (the broker's folders, exports) go to a scratch folder.
    os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="portal-bench-audit-"))
    sys.path.insert(0, str(ROOT))
    import django
    from django.db import connections

    django.setup()
    connections["default"].settings_dict["TEST"]["NAME"] = database


# Ledger and floor take turns, this many events each, so that both meet the same load
# on a shared machine (one after the other, a load that came or went between them
# moved the ratio by 2x either way).
APPEND_BLOCK = 200


def _append(count: int) -> tuple[float, float, list[float]]:
    """(events/s through the ledger, rows/s of plain INSERTs of the same rows, each
    block's ratio), timed in alternating blocks of APPEND_BLOCK."""
    from django.db import connection, transaction

    from portal.audit.actors import Actor
    from portal.audit.services import audit_record

    actor = Actor("user", "u-bench")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_plain_event (LIKE audit_auditevent INCLUDING ALL);"
            "CREATE TABLE bench_plain_payload (LIKE audit_auditpayload INCLUDING ALL)"
        )
    ledger_seconds = floor_seconds = 0.0
    block_ratios = []
    for start in range(0, count, APPEND_BLOCK):
        block = range(start, min(count, start + APPEND_BLOCK))
        started = time.perf_counter()
        for n in block:
            audit_record(
                action="review.decision_recorded",
                actor=actor,
                object_type="review",
                object_id=n % 50,
                payload={"verdict": "approve", "role": "devops", "comment": f"bench {n}"},
            )
        ledger_block = time.perf_counter() - started

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT e.sequence, e.occurred_at, e.actor_type, e.actor_id, e.action, "
                "e.object_type, e.object_id, e.payload_digest, e.prev_hash, e.hash, "
                "p.data::text FROM audit_auditevent e JOIN audit_auditpayload p "
                "ON p.event_id = e.id ORDER BY e.sequence DESC LIMIT %s",
                [len(block)],
            )
            rows = cursor.fetchall()
        started = time.perf_counter()
        for row in rows:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO bench_plain_event (sequence, occurred_at, actor_type, "
                    "actor_id, action, object_type, object_id, payload_digest, prev_hash, "
                    "hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    row[:10],
                )
                (event_id,) = cursor.fetchone()
                cursor.execute(
                    "INSERT INTO bench_plain_payload (event_id, data, redaction_reason) "
                    "VALUES (%s, %s::jsonb, '')",
                    [event_id, row[10]],
                )
        floor_block = time.perf_counter() - started
        ledger_seconds += ledger_block
        floor_seconds += floor_block
        block_ratios.append(floor_block / ledger_block)
    return count / ledger_seconds, count / floor_seconds, block_ratios


class _CapturedHTML:
    """Records the HTML WeasyPrint is handed, so the floor prints the very same page."""

    last: str = ""


def _packs(pack_events: int) -> list[tuple[str, float, float, int]]:
    """(what, seconds of the pack, seconds of WeasyPrint alone, pages) per pack."""
    import io

    import weasyprint
    from django.utils import timezone
    from pypdf import PdfReader

    from governance.choices import Target
    from governance.models import ModelVersion
    from governance.reviews.evidence import version_evidence_pack_pdf
    from governance.reviews.services import review_decide, review_open
    from governance.services.registry import version_register
    from portal.accounts.choices import Role
    from portal.accounts.models import RoleGrant, User
    from portal.audit.actors import Actor
    from portal.audit.reports import audit_period_report_pdf

    real_html = weasyprint.HTML
    # The first layout loads fonts; neither the pack nor its floor should pay for it.
    real_html(string="<p>warm-up</p>").write_pdf()

    def capturing(*args: object, **kwargs: object) -> object:
        _CapturedHTML.last = str(kwargs.get("string", ""))
        return real_html(*args, **kwargs)

    weasyprint.HTML = capturing  # type: ignore[misc]

    def floor_seconds() -> float:
        started = time.perf_counter()
        real_html(string=_CapturedHTML.last).write_pdf()
        return time.perf_counter() - started

    def people(role: str, n: int) -> User:
        user = User.objects.create_user(
            email=f"{role}{n}@zeromargin.example", full_name=f"{role} {n}"
        )
        RoleGrant.objects.create(user=user, role=role)
        return user

    created, _ = version_register(
        model_slug="demand-forecasting",
        data={
            "version": "9.0.0",
            "artifact_uri": "gs://zm-models/demand-forecasting/9.0.0/model",
            "image_uri": "europe-west1-docker.pkg.dev/zm-ml/serving/demand-forecasting",
            "image_digest": "sha256:" + "ab" * 32,
            "data_version": "bq-snapshot-bench",
            "code_version": "c" * 40,
            "metrics": {"mae": 350.5, "mape": 0.121, "rmse": 480.2},
        },
        actor=Actor.system("bench"),
    )
    version = ModelVersion.objects.select_related("model").get(pk=created.pk)
    owner = people(Role.MODEL_OWNER, 1)
    for target, deciders in (
        (Target.STAGING, [(Role.DATA_SCIENCE_LEAD, 1)]),
        (Target.CANARY, [(Role.DATA_SCIENCE_LEAD, 2), (Role.DEVOPS, 1)]),
    ):
        review, _ = review_open(
            version=version, target=target, requested_by_actor=owner.audit_actor(), source="ui"
        )
        for role, n in deciders:
            review_decide(
                review=review,
                reviewer=people(role, n + (10 if target == Target.CANARY else 0)),
                verdict="approve",
                role=role,
                comment="Backtest holds on every region.",
            )
    results = []
    started = time.perf_counter()
    pdf = version_evidence_pack_pdf(version=version, progress=lambda *a: None)
    seconds = time.perf_counter() - started
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    results.append(("version evidence pack", seconds, floor_seconds(), pages))

    _append_quietly(pack_events)
    today = timezone.localdate()
    started = time.perf_counter()
    pdf = audit_period_report_pdf(since=today - timedelta(days=29), until=today)
    seconds = time.perf_counter() - started
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    results.append(("30-day period report", seconds, floor_seconds(), pages))
    weasyprint.HTML = real_html  # type: ignore[misc]
    return results


def _append_quietly(count: int) -> None:
    from portal.audit.actors import Actor
    from portal.audit.services import audit_record

    for n in range(count):
        audit_record(
            action="role.granted" if n % 7 else "review.decision_recorded",
            actor=Actor("user", f"u-{n % 13}"),
            object_type="review",
            object_id=n % 40,
            payload={"verdict": "approve" if n % 3 else "reject", "role": "devops"},
        )


def _bulk_chain(count: int) -> float:
    """Append `count` chained events straight into the tables with COPY (as audit_record
    would write them, hashed with the reference encoding, without its per-event
    transaction), in batches; returns the seconds a bare loop took to SHA-256 the
    canonical bytes each event's hash and its payload's digest are computed over (the
    floor), timed batch by batch so the bytes need not all be kept."""
    from django.db import connection, transaction
    from django.utils import timezone

    from portal.audit.hashing import canonical_json, event_hash_body
    from portal.audit.models import AuditChainHead, AuditEvent, AuditPayload

    head, _ = AuditChainHead.objects.get_or_create(pk=1)
    sequence, prev_hash = head.sequence, head.hash
    events_table = AuditEvent._meta.db_table
    payloads_table = AuditPayload._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {events_table}")  # noqa: S608  # nosec B608  # the model's own table
        (next_id,) = cursor.fetchone()
    now = timezone.now()
    floor = 0.0
    batch = 20_000
    for start in range(0, count, batch):
        events, payloads, bodies = [], [], []
        for n in range(start, min(count, start + batch)):
            sequence += 1
            next_id += 1
            data = {"n": n, "verdict": "approve", "role": "devops"}
            payload_body = canonical_json({"data": data, "client_ip": None})
            digest = hashlib.sha256(payload_body).hexdigest()
            fields = {
                "sequence": sequence,
                "occurred_at": now + timedelta(microseconds=n),
                "actor_type": "user",
                "actor_id": f"u-{n % 13}",
                "action": "review.decision_recorded",
                "object_type": "review",
                "object_id": str(n % 40),
                "payload_digest": digest,
                "prev_hash": prev_hash,
            }
            body = event_hash_body(**fields)
            prev_hash = hashlib.sha256(body).hexdigest()
            bodies += (payload_body, body)
            events.append((next_id, *fields.values(), prev_hash))
            payloads.append((next_id, canonical_json(data).decode()))
        started = time.perf_counter()
        for body in bodies:
            hashlib.sha256(body).hexdigest()
        floor += time.perf_counter() - started
        with transaction.atomic(), connection.cursor() as cursor:
            columns = ", ".join(["id", *fields, "hash"])
            with cursor.copy(f"COPY {events_table} ({columns}) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
            with cursor.copy(
                f"COPY {payloads_table} (event_id, data, redaction_reason) FROM STDIN"
            ) as copy:
                for event_id, data_text in payloads:
                    copy.write_row((event_id, data_text, ""))
            AuditChainHead.objects.filter(pk=1).update(sequence=sequence, hash=prev_hash)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{events_table}', 'id'), %s)",
            [next_id],
        )
        cursor.execute(f"ANALYZE {events_table}; ANALYZE {payloads_table}")
    return floor


def _verify(count: int) -> tuple[int, float, float, float, bool]:
    """(events checked, seconds to write them, seconds of audit_chain_verify, seconds
    of the bare SHA-256 loop over the same bytes, whether the chain held)."""
    from portal.audit.models import AuditEvent
    from portal.audit.verification import audit_chain_verify

    started = time.perf_counter()
    floor = _bulk_chain(count)
    written = time.perf_counter() - started
    total = AuditEvent.objects.count()
    started = time.perf_counter()
    report = audit_chain_verify(chunk_size=5000)
    seconds = time.perf_counter() - started
    # The floor covers the bulk events; scale it to every event verified.
    return report.checked, written, seconds, floor * total / max(count, 1), report.ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--append", type=int, default=2000, help="events appended one by one")
    parser.add_argument("--pack-events", type=int, default=0, help="events added to the period's")
    parser.add_argument("--verify", type=int, default=1_000_000, help="events to verify")
    parser.add_argument(
        "--only",
        choices=("append", "packs", "verify"),
        action="append",
        help="run only this part (repeatable); default: all three",
    )
    args = parser.parse_args()
    parts = set(args.only or ("append", "packs", "verify"))
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL server: the bench creates its own database")
    _setup(f"bench_audit_{os.getpid()}")
    from django.db import connection

    creation = connection.creation
    creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        _run(parts, args)
    finally:
        connection.close()
        creation.destroy_test_db(creation.connection.settings_dict["NAME"], verbosity=0)


def _run(parts: set[str], args: argparse.Namespace) -> None:
    if "append" in parts:
        ledger, floor, blocks = _append(args.append)
        print(
            f"append ({args.append} events, one transaction each, ledger and floor "
            f"taking turns {APPEND_BLOCK} at a time)"
        )
        print(f"  ledger (chain lock + hash + payload): {ledger:9.0f} events/s")
        print(f"  floor (plain INSERTs of the same rows): {floor:7.0f} rows/s")
        print(
            f"  ratio {ledger / floor:.2f}x the floor (goal >= 0.5x); "
            f"blocks {min(blocks):.2f}x to {max(blocks):.2f}x"
        )
    if "packs" in parts:
        print("evidence packs")
        for what, seconds, floor_s, pages in _packs(args.pack_events):
            print(
                f"  {what}: {seconds:6.2f} s, {pages} pages; WeasyPrint alone on the same "
                f"HTML {floor_s:6.2f} s; ratio {seconds / floor_s:.2f}x (goal <= 1.2x)"
            )
    if "verify" in parts:
        checked, written, seconds, floor_s, ok = _verify(args.verify)
        print(f"verify ({checked} events, chain {'intact' if ok else 'BROKEN'})")
        print(f"  written with COPY in {written:6.2f} s")
        print(f"  audit_chain_verify: {seconds:6.2f} s ({checked / seconds:,.0f} events/s)")
        print(f"  floor (SHA-256 over the same bytes): {floor_s:6.2f} s")
        print(
            f"  ratio {seconds / floor_s:.1f}x the floor; 1M events at this rate: "
            f"{seconds * 1_000_000 / checked:5.1f} s (goal < 30 s)"
        )


if __name__ == "__main__":
    main()

"""The audit ledger's costs on PostgreSQL, each beside its floor.

    DATABASE_URL=postgres://user@host:5432/any python bench/audit.py \\
        [--append 2000] [--pack-events 0] [--verify 100000]

Creates its own database on that server (`bench_audit_<pid>`), migrates it, and drops
it at the end. Prints:

- append: events/s through `audit_record` (one transaction each, the chain head locked,
  the hash computed, the payload row written) against plain INSERTs of the same rows
  into copies of the two tables with no chain (the floor); goal at least 0.5x.
- evidence packs: seconds for a model version's pack (two reviews, five decisions) and
  for the audit report of a 30-day period holding every event appended so far (the
  `--append` ones, the version's, and `--pack-events` more), each against
  WeasyPrint alone on the same HTML (the floor); goal within 1.2x.
- verify: seconds for `audit_chain_verify` over `--verify` events against SHA-256 over
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


def _append(count: int) -> tuple[float, float]:
    """(events/s through the ledger, rows/s of plain INSERTs of the same rows)."""
    from django.db import connection, transaction

    from portal.audit.actors import Actor
    from portal.audit.services import audit_record

    actor = Actor("user", "u-bench")
    started = time.perf_counter()
    for n in range(count):
        audit_record(
            action="review.decision_recorded",
            actor=actor,
            object_type="review",
            object_id=n % 50,
            payload={"verdict": "approve", "role": "devops", "comment": f"bench {n}"},
        )
    ledger = count / (time.perf_counter() - started)

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_plain_event (LIKE audit_auditevent INCLUDING ALL);"
            "CREATE TABLE bench_plain_payload (LIKE audit_auditpayload INCLUDING ALL);"
        )
        cursor.execute(
            "SELECT e.sequence, e.occurred_at, e.actor_type, e.actor_id, e.action, "
            "e.object_type, e.object_id, e.payload_digest, e.prev_hash, e.hash, "
            "p.data::text FROM audit_auditevent e JOIN audit_auditpayload p "
            "ON p.event_id = e.id ORDER BY e.sequence DESC LIMIT %s",
            [count],
        )
        rows = cursor.fetchall()
    started = time.perf_counter()
    for row in rows:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_plain_event (sequence, occurred_at, actor_type, actor_id, "
                "action, object_type, object_id, payload_digest, prev_hash, hash) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                row[:10],
            )
            (event_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO bench_plain_payload (event_id, data, redaction_reason) "
                "VALUES (%s, %s::jsonb, '')",
                [event_id, row[10]],
            )
    floor = len(rows) / (time.perf_counter() - started)
    return ledger, floor


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


def _bulk_chain(count: int) -> list[bytes]:
    """Append `count` chained events straight into the tables (as audit_record would
    write them, without its per-event transaction); returns the canonical bytes each
    event's hash and its payload's digest were computed over, for the floor."""
    from django.db import transaction
    from django.utils import timezone

    from portal.audit.hashing import canonical_json, payload_digest
    from portal.audit.models import AuditChainHead, AuditEvent, AuditPayload

    head = AuditChainHead.objects.get(pk=1)
    sequence, prev_hash = head.sequence, head.hash
    bodies: list[bytes] = []
    now = timezone.now()
    batch = 5000
    for start in range(0, count, batch):
        events, payloads = [], []
        for n in range(start, min(count, start + batch)):
            sequence += 1
            data = {"n": n, "verdict": "approve", "role": "devops"}
            digest = payload_digest(data, None)
            bodies.append(canonical_json({"data": data, "client_ip": None}))
            occurred_at = now + timedelta(microseconds=n)
            fields = {
                "sequence": sequence,
                "occurred_at": occurred_at,
                "actor_type": "user",
                "actor_id": f"u-{n % 13}",
                "action": "review.decision_recorded",
                "object_type": "review",
                "object_id": str(n % 40),
                "payload_digest": digest,
                "prev_hash": prev_hash,
            }
            body = canonical_json(
                {
                    "sequence": sequence,
                    "occurred_at": occurred_at.isoformat(timespec="microseconds"),
                    "actor": ["user", fields["actor_id"]],
                    "action": fields["action"],
                    "object": ["review", fields["object_id"]],
                    "payload_digest": digest,
                    "prev_hash": prev_hash,
                }
            )
            bodies.append(body)
            prev_hash = hashlib.sha256(body).hexdigest()
            events.append(AuditEvent(**fields, hash=prev_hash))
            payloads.append(data)
        with transaction.atomic():
            created = AuditEvent.objects.bulk_create(events)
            AuditPayload.objects.bulk_create(
                AuditPayload(event=event, data=data)
                for event, data in zip(created, payloads, strict=True)
            )
            AuditChainHead.objects.filter(pk=1).update(sequence=sequence, hash=prev_hash)
    return bodies


def _verify(count: int) -> tuple[int, float, float, bool]:
    """(events checked, seconds of audit_chain_verify, seconds of the bare SHA-256 loop
    over the same bytes, whether the chain held)."""
    from portal.audit.models import AuditEvent
    from portal.audit.verification import audit_chain_verify

    bodies = _bulk_chain(count)
    total = AuditEvent.objects.count()
    started = time.perf_counter()
    report = audit_chain_verify(chunk_size=5000)
    seconds = time.perf_counter() - started
    # The floor: SHA-256 over the same canonical bytes (each event's body and its
    # payload), in a loop with nothing else to do, scaled to every event verified.
    started = time.perf_counter()
    for body in bodies:
        hashlib.sha256(body).hexdigest()
    floor = (time.perf_counter() - started) * total / (len(bodies) / 2)
    return report.checked, seconds, floor, report.ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--append", type=int, default=2000, help="events appended one by one")
    parser.add_argument("--pack-events", type=int, default=0, help="events added to the period's")
    parser.add_argument("--verify", type=int, default=100_000, help="events to verify")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL server: the bench creates its own database")
    _setup(f"bench_audit_{os.getpid()}")
    from django.db import connection

    creation = connection.creation
    creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        ledger, floor = _append(args.append)
        print(f"append ({args.append} events, one transaction each)")
        print(f"  ledger (chain lock + hash + payload): {ledger:9.0f} events/s")
        print(f"  floor (plain INSERTs of the same rows): {floor:7.0f} rows/s")
        print(f"  ratio {ledger / floor:.2f}x the floor (goal >= 0.5x)")
        print("evidence packs")
        for what, seconds, floor_s, pages in _packs(args.pack_events):
            print(
                f"  {what}: {seconds:6.2f} s, {pages} pages; WeasyPrint alone on the same "
                f"HTML {floor_s:6.2f} s; ratio {seconds / floor_s:.2f}x (goal <= 1.2x)"
            )
        checked, seconds, floor_s, ok = _verify(args.verify)
        print(f"verify ({checked} events, chain {'intact' if ok else 'BROKEN'})")
        print(f"  audit_chain_verify: {seconds:6.2f} s ({checked / seconds:,.0f} events/s)")
        print(f"  floor (SHA-256 over the same bytes): {floor_s:6.2f} s")
        print(
            f"  ratio {seconds / floor_s:.1f}x the floor; 1M events at this rate: "
            f"{seconds * 1_000_000 / checked:5.1f} s (goal < 30 s)"
        )
    finally:
        connection.close()
        creation.destroy_test_db(creation.connection.settings_dict["NAME"], verbosity=0)


if __name__ == "__main__":
    main()

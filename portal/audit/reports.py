"""The audit report of a period as a PDF (WeasyPrint), made by an export job.

Every event of the period with who did it (name and role), approvals and refusals (the
events whose payload carries a `verdict`), totals by action and by actor, and the signed
checkpoint the report was built from with the steps to verify it offline. The report
signs a fresh checkpoint first when the ledger grew, so the events it lists are covered.
"""

import json
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from portal.audit.checkpoints import checkpoint_document
from portal.audit.models import AuditEvent
from portal.audit.selectors import audit_actor_names, audit_checkpoint_latest
from portal.audit.services import audit_checkpoint_create
from portal.exports.registry import ExportFile

AUDIT_PERIOD_REPORT = "audit.period_report"
_APPROVING = {"approve", "approved", "approval"}


def _no_progress(percent: int, message: str) -> None:
    return None


def evidence_pack_pdf(
    *,
    template: str,
    title: str,
    context: dict[str, Any],
    progress: Callable[[int, str], None] = _no_progress,
) -> bytes:
    """Print a pack: `template` extends audit/pack_print.html (cover, contents, page
    numbers, the checkpoint and how to verify) and fills its blocks from `context`.

    Signs a checkpoint first when the ledger grew, so the pack names one covering every
    event it shows. Side effects: may sign a checkpoint.
    """
    from weasyprint import HTML  # -- slow

    audit_checkpoint_create()
    checkpoint = audit_checkpoint_latest()
    html = render_to_string(
        template,
        {
            **context,
            "pack_title": title,
            "checkpoint": checkpoint,
            "checkpoint_json": (
                json.dumps(checkpoint_document(checkpoint), indent=2) if checkpoint else ""
            ),
            "printed_at": timezone.now(),
        },
    )
    progress(40, "laying out the pages")
    document = HTML(string=html).render()
    progress(85, f"writing {len(document.pages)} pages")
    return document.write_pdf()


def audit_period_report_pdf(
    *, since: date, until: date, progress: Callable[[int, str], None] = _no_progress
) -> bytes:
    """The period's report as PDF bytes. Side effects: may sign a checkpoint."""
    events = list(
        AuditEvent.objects.select_related("payload_record")
        .filter(occurred_at__date__gte=since, occurred_at__date__lte=until)
        .order_by("sequence")
    )
    progress(10, f"{len(events)} events in the period")
    names = audit_actor_names(events)
    rows, decisions = [], []
    for event in events:
        record = getattr(event, "payload_record", None)
        data = record.data if record is not None and not record.redacted_at else {}
        actor = names.get((event.actor_type, event.actor_id)) or event.actor_display
        rows.append(
            {"event": event, "actor": actor, "redacted": bool(record and record.redacted_at)}
        )
        verdict = data.get("verdict") if isinstance(data, dict) else None
        if verdict:
            decisions.append(
                {
                    "event": event,
                    "actor": actor,
                    "verdict": verdict,
                    "approved": str(verdict).lower() in _APPROVING,
                    "role": data.get("role", ""),
                }
            )
    return evidence_pack_pdf(
        template="audit/report_print.html",
        title=f"Audit report {since} to {until}",
        context={
            "since": since,
            "until": until,
            "rows": rows,
            "decisions": decisions,
            "approvals": sum(1 for d in decisions if d["approved"]),
            "refusals": sum(1 for d in decisions if not d["approved"]),
            "by_action": Counter(event.action for event in events).most_common(),
            "by_actor": Counter(row["actor"] for row in rows).most_common(),
        },
        progress=progress,
    )


def audit_period_report_produce(
    params: dict[str, Any], progress: Callable[[int, str], None]
) -> ExportFile:
    """The export job's maker for `audit.period_report` (params: since, until as ISO dates)."""
    since, until = date.fromisoformat(params["since"]), date.fromisoformat(params["until"])
    return ExportFile(
        content=audit_period_report_pdf(since=since, until=until, progress=progress),
        filename=f"audit-report-{since}-{until}.pdf",
        content_type="application/pdf",
    )

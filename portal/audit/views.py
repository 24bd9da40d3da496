import csv
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.accounts.permissions import may_read_audit, user_passes
from portal.audit.actors import client_ip_for_request
from portal.audit.checkpoints import checkpoint_document
from portal.audit.filters import AuditEventFilter
from portal.audit.forms import AuditReportForm
from portal.audit.models import AuditEvent
from portal.audit.reports import AUDIT_PERIOD_REPORT
from portal.audit.selectors import (
    audit_actor_names,
    audit_checkpoint_latest,
    audit_events_all,
    audit_inclusion_proofs,
)
from portal.audit.services import audit_checkpoint_create
from portal.audit.timeline import audit_timeline
from portal.audit.verification import audit_chain_verify
from portal.exports.services import export_job_request
from portal.spreadsheets import spreadsheet_cell

EXPORT_BATCH = 500
PROOF_BUNDLE_TYPE = "audit-events-with-proofs"
EXPORT_COLUMNS = (
    "sequence",
    "occurred_at",
    "actor",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "payload",
    "client_ip",
    "redacted",
    "payload_digest",
    "prev_hash",
    "hash",
)


def _named(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """The events with `actor_name` set (auditors and admins may see who acted)."""
    events = list(events)
    names = audit_actor_names(events)
    for event in events:
        event.actor_name = names.get((event.actor_type, event.actor_id), "")
    return events


def _payload_text(event: AuditEvent) -> str:
    record = getattr(event, "payload_record", None)
    if record is None or record.redacted_at:
        return ""
    return json.dumps(record.data, indent=2, sort_keys=True, ensure_ascii=False)


@user_passes(may_read_audit)
def event_list(request: HttpRequest) -> HttpResponse:
    filterset = AuditEventFilter(request.GET or None, queryset=audit_events_all())
    form = filterset.form
    events = filterset.qs if form.is_valid() else audit_events_all()
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    page.object_list = _named(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/event_list.html",
        {"form": form, "page": page, "query": query.urlencode()},
        status=200 if form.is_valid() or not request.GET else 400,
    )


@user_passes(may_read_audit)
def event_detail(request: HttpRequest, sequence: int) -> HttpResponse:
    event = get_object_or_404(
        AuditEvent.objects.select_related("payload_record"), sequence=sequence
    )
    (event,) = _named([event])
    return render(
        request, "audit/event_detail.html", {"event": event, "payload": _payload_text(event)}
    )


@user_passes(may_read_audit)
def object_timeline(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    """Every event of an object and of what apps registered as part of its life."""
    events = audit_timeline(object_type=object_type, object_id=object_id)
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    page.object_list = _named(page.object_list)
    for event in page.object_list:
        event.payload_text = _payload_text(event)
    return render(
        request,
        "audit/timeline.html",
        {"object_type": object_type, "object_id": object_id, "page": page, "query": ""},
    )


@user_passes(may_read_audit)
def object_timeline_export(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    """The timeline's events (the object's and its related objects'), oldest first,
    streamed as CSV: the same rows as the trail's export."""
    events = audit_timeline(object_type=object_type, object_id=object_id)
    rows = _export_rows(events.iterator(chunk_size=EXPORT_BATCH))
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-timeline.csv"'
    return response


def _export_rows(events: Iterable[AuditEvent]) -> Iterator[dict]:
    iterator = iter(events)
    while batch := list(islice(iterator, EXPORT_BATCH)):
        for event in _named(batch):
            record = getattr(event, "payload_record", None)
            redacted = bool(record and record.redacted_at)
            yield {
                "sequence": event.sequence,
                "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
                "actor": event.actor_display,
                "actor_name": event.actor_name,
                "action": event.action,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "payload": None if record is None or redacted else record.data,
                # With the payload, it lets an offline verifier recompute the digest.
                "client_ip": None if record is None else record.client_ip,
                "redacted": redacted,
                "payload_digest": event.payload_digest,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            }


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    writer = csv.DictWriter(_Echo(), fieldnames=EXPORT_COLUMNS)
    yield writer.writeheader()
    for row in rows:
        payload = row["payload"]
        row["payload"] = "" if payload is None else json.dumps(payload, sort_keys=True)
        yield writer.writerow({key: spreadsheet_cell(value) for key, value in row.items()})


def _json_lines(rows: Iterator[dict]) -> Iterator[str]:
    yield "["
    for position, row in enumerate(rows):
        yield ("," if position else "") + "\n" + json.dumps(row, ensure_ascii=False)
    yield "\n]\n"


def _proof_lines(
    rows: Iterator[dict], *, document: dict, filters: dict, tree_size: int
) -> Iterator[str]:
    """The filtered events as one JSON document: the checkpoint they are proven against,
    the filters, then each event with its inclusion proof in that checkpoint's tree."""
    head = {
        "type": PROOF_BUNDLE_TYPE,
        "filters": filters,
        "checkpoint": document,
        "note": (
            "Each event carries its RFC 9162 inclusion proof in the checkpoint's tree: "
            "deploy/audit/verify-audit.py --proofs checks them offline. The proofs show "
            "each exported event is in the ledger unchanged, not that the filter left "
            "nothing out; for completeness verify the whole trail."
        ),
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "events": ['
    position = 0
    while batch := list(islice(rows, EXPORT_BATCH)):
        proofs = audit_inclusion_proofs(
            sequences=[row["sequence"] for row in batch], tree_size=tree_size
        )
        for row in batch:
            row["inclusion"] = {
                "leaf_index": row["sequence"] - 1,
                "tree_size": tree_size,
                "proof": proofs[row["sequence"]],
            }
            yield ("," if position else "") + "\n" + json.dumps(row, ensure_ascii=False)
            position += 1
    yield "\n]}\n"


@user_passes(may_read_audit)
def event_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The filtered trail, oldest first, streamed as CSV or JSON (a batch of rows at a
    time), or as JSON with each event's inclusion proof (`proofs.json`) against a
    checkpoint signed first when the ledger grew (events appended after it are left
    for the next export)."""
    if fmt not in ("csv", "json", "proofs.json"):
        raise Http404("Export as csv, json or proofs.json.")
    filterset = AuditEventFilter(request.GET, queryset=audit_events_all())
    if not filterset.is_valid():
        return HttpResponse(
            json.dumps({"error": "Invalid filters.", "fields": filterset.errors.get_json_data()}),
            status=400,
            content_type="application/json",
        )
    if fmt == "proofs.json":
        audit_checkpoint_create()  # cover every event committed so far
        checkpoint = audit_checkpoint_latest()
        if checkpoint is None:
            return HttpResponse(
                json.dumps({"error": "The ledger is empty: there is nothing to prove."}),
                status=409,
                content_type="application/json",
            )
        events = (
            filterset.qs.filter(sequence__lte=checkpoint.tree_size)
            .order_by("sequence")
            .iterator(chunk_size=EXPORT_BATCH)
        )
        response = StreamingHttpResponse(
            _proof_lines(
                _export_rows(events),
                document=checkpoint_document(checkpoint),
                filters={key: value for key, value in request.GET.items() if value},
                tree_size=checkpoint.tree_size,
            ),
            content_type="application/json",
        )
        response["Content-Disposition"] = 'attachment; filename="audit-events.proofs.json"'
        return response
    events = filterset.qs.order_by("sequence").iterator(chunk_size=EXPORT_BATCH)
    rows = _export_rows(events)
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json_lines(rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="audit-events.{fmt}"'
    return response


@user_passes(may_read_audit)
def period_report(request: HttpRequest) -> HttpResponse:
    """Ask for the audit report of a period as PDF (a worker prints it as an export job),
    or for the period's events as CSV (the trail's streamed export, filtered by it)."""
    form = AuditReportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
        if request.POST.get("format") == "csv":
            period = urlencode({"since": since.isoformat(), "until": until.isoformat()})
            return redirect(f"{reverse('audit:export', kwargs={'fmt': 'csv'})}?{period}")
        job = export_job_request(
            kind=AUDIT_PERIOD_REPORT,
            params={"since": since.isoformat(), "until": until.isoformat()},
            title=f"Audit report {since} to {until}",
            requested_by=request.user,
            client_ip=client_ip_for_request(request),
        )
        return redirect("exports:job_detail", pk=job.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "audit/report_form.html", {"form": form}, status=status)


@user_passes(may_read_audit)
@require_POST
def chain_verify(request: HttpRequest) -> HttpResponse:
    report = audit_chain_verify()
    (messages.success if report.ok else messages.error)(request, report.summary())
    return redirect("audit:event_list")

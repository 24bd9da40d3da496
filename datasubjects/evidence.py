"""A data subject request's evidence pack as PDF: what an auditor files about how one
request was handled.

Printed by the portal's export jobs (kind `datasubjects.request_evidence_pack`, which
`DataSubjectsConfig.ready()` registers) through portal.audit's pack template, so it
carries the same cover, contents, page numbers, checkpoint and verification steps as
the other packs. Holds the request (kind, deadlines, extension, refusal), its identity
verification, the result in each data source with the SHA-256 of each evidence file,
the certificate (for an erasure: what each source erased or kept, and the model
versions trained on the person's data), and the request's history from the ledger.
Like the certificate, it names the person only by the request's public id and
pseudonymous id: no e-mail address, no name.
"""

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.urls import reverse

from datasubjects.choices import REQUEST_AUDIT_TYPE, RequestKind, TaskAction
from datasubjects.models import DataSubjectRequest
from datasubjects.permissions import may_read_requests
from portal.audit.reports import evidence_pack_pdf
from portal.audit.selectors import audit_actor_names
from portal.audit.timeline import audit_timeline
from portal.exports.registry import ExportFile, ExportKind, export_kind_register

REQUEST_EVIDENCE_PACK = "datasubjects.request_evidence_pack"


def _file_sha256(relative: str) -> str:
    """SHA-256 of a file under DSAR_FILES_DIR, or "" when it is gone (expired)."""
    if not relative:
        return ""
    path = Path(settings.DSAR_FILES_DIR) / relative
    if not path.is_file():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def request_evidence_pack_pdf(
    *, request: DataSubjectRequest, progress: Callable[[int, str], None]
) -> bytes:
    """The pack as PDF bytes. Side effects: may sign an audit checkpoint."""
    tasks = list(request.tasks.select_related("source").order_by("created_at", "pk"))
    results = [
        {"task": task, "evidence_sha256": _file_sha256(task.evidence_file)} for task in tasks
    ]
    events = list(audit_timeline(object_type=REQUEST_AUDIT_TYPE, object_id=request.audit_id))
    names = audit_actor_names(events)
    history = [
        {
            "event": event,
            "actor": names.get((event.actor_type, event.actor_id)) or event.actor_display,
        }
        for event in events
    ]
    progress(20, f"{len(tasks)} source results and {len(events)} events gathered")
    return evidence_pack_pdf(
        template="datasubjects/evidence_pack_print.html",
        title=f"Evidence pack of request {request.public_id}",
        context={
            "dsr": request,
            "results": results,
            "erasures": [row for row in results if row["task"].action == TaskAction.ERASURE],
            "is_erasure": request.kind == RequestKind.ERASURE,
            "package_sha256": _file_sha256(request.package_file),
            "history": history,
        },
        progress=progress,
    )


def _request(params: dict[str, Any]) -> DataSubjectRequest | None:
    return (
        DataSubjectRequest.objects.select_related("assigned_to", "duplicate_of")
        .filter(public_id=params.get("public_id"))
        .first()
    )


def request_evidence_pack_produce(
    params: dict[str, Any], progress: Callable[[int, str], None]
) -> ExportFile:
    """The export job's maker (params: {"public_id": "<uuid>"}); LookupError when the
    request is gone."""
    request = _request(params)
    if request is None:
        raise LookupError(f"No data subject request {params.get('public_id')}.")
    return ExportFile(
        content=request_evidence_pack_pdf(request=request, progress=progress),
        filename=f"evidence-dsr-{request.public_id}.pdf",
        content_type="application/pdf",
    )


def _readable(user: Any, params: dict[str, Any]) -> bool:
    # Those who may read the request itself: privacy officers, auditors, portal admins.
    return may_read_requests(user)


def _source_url(params: dict[str, Any]) -> str:
    request = _request(params)
    if request is None:
        return ""
    return reverse("datasubjects:request_detail", kwargs={"public_id": request.public_id})


def register_request_evidence_pack() -> None:
    export_kind_register(
        ExportKind(
            name=REQUEST_EVIDENCE_PACK,
            label="Evidence pack of a data subject request (PDF)",
            produce=request_evidence_pack_produce,
            may_read=_readable,
            source_url=_source_url,
        )
    )

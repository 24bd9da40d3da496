"""The access package (Arts. 15 and 20): what every source holds about the person, as
JSON and CSV per source, with a readable HTML summary that carries the Art. 15
information and the explanation of the profiling.

Built once, when the last access task of a request is done, whichever path closed it
(`access_package_ensure`): the worker that ran it, a worker handed the same message
again after a crash, or a privacy officer recording a task by hand (the worker builds
it after that commit); completing the request builds it too if it is still missing,
and refuses when it cannot be built. The zip is written beside its final name and
renamed into place.
"""

import csv
import io
import json
import os
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from datasubjects.choices import (
    OPEN_STATES,
    PACKAGE_KINDS,
    REQUEST_AUDIT_TYPE,
    SourceKind,
    TaskAction,
    TaskState,
)
from datasubjects.models import DataSubjectRequest
from datasubjects.notices import ART15_INFORMATION, person_profiling, profiling_explanations
from datasubjects.selectors import suppression_keys_by_purpose
from portal.audit.actors import Actor
from portal.audit.services import audit_record

PACKAGE_LINK_SALT = "datasubjects.package"


def _csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        )
    return out.getvalue()


def _suppressed_purposes(request: DataSubjectRequest) -> set[str]:
    """The profiling purposes the person is left out of, by their customer keys."""
    keys = set(request.customer_keys or [])
    return {
        purpose
        for purpose, listed in suppression_keys_by_purpose().items()
        if purpose != "training" and keys & listed
    }


def access_package_ensure(*, request: DataSubjectRequest) -> Path | None:
    """Build the access package of an access or portability request once none of its
    access tasks is left undone, unless it is built already; the path of the package,
    or None while it cannot be built yet (a task not done, the request not open, a
    kind without a package).

    A request with no source task at all (no active source when it started) gets a
    package of the Art. 15 information alone. Two callers at once (the worker and a
    privacy officer completing the request) queue on the request's row lock, held
    while the zip is written: the second finds the package built and returns it.
    Side effects: those of `access_package_build`, at most once per request (again
    only if its file has gone). PackageUnreadable when an evidence file cannot be
    read, OSError when the package cannot be written.
    """
    if request.kind not in PACKAGE_KINDS:
        return None
    root = Path(settings.DSAR_FILES_DIR)
    with transaction.atomic():
        locked = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if locked.package_file and (root / locked.package_file).is_file():
            return root / locked.package_file
        if locked.state not in OPEN_STATES:
            return None
        if locked.tasks.filter(action=TaskAction.ACCESS).exclude(state=TaskState.DONE).exists():
            return None
        path = access_package_build(request=locked)
    request.package_file = locked.package_file
    request.package_built_at = locked.package_built_at
    return path


class PackageUnreadable(Exception):
    """A done task's evidence file cannot be read: the package would leave out what
    that source holds, so it is not built."""


def _connector_tables(task: object, root: Path) -> dict[str, list]:
    """The tables a connector found ({table: rows}), from its evidence file; {} for a
    task a person closed (no such file, or their attachment instead).
    PackageUnreadable, naming the source and the file, when the file is gone or bad."""
    if not task.evidence_file.endswith(f".{task.action}.json"):
        return {}
    try:
        evidence = json.loads((root / task.evidence_file).read_text())
        return evidence["tables"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PackageUnreadable(
            f"the evidence file of {task.source.name}, {task.evidence_file}, cannot be read"
        ) from error


def _attachment(task: object, root: Path) -> Path | None:
    """The file a privacy officer attached when recording the task by hand, if any."""
    if not task.evidence_file or task.evidence_file.endswith(f".{task.action}.json"):
        return None
    path = root / task.evidence_file
    return path if path.is_file() else None


def access_package_build(*, request: DataSubjectRequest) -> Path:
    """Write the request's access package from its done access tasks and record where
    it is, whatever is there already (callers want `access_package_ensure`).

    A task a person recorded by hand contributes its note and the file attached to it.
    PackageUnreadable when a task's evidence file cannot be read (nothing recorded).
    Side effects: writes `access-package.zip` under DSAR_FILES_DIR; sets the request's
    `package_file`; records `dsr.package_built` (files and row counts only).
    """
    tasks = list(
        request.tasks.filter(action=TaskAction.ACCESS, state=TaskState.DONE).select_related(
            "source"
        )
    )
    root = Path(settings.DSAR_FILES_DIR)
    sources = []
    predictions: list[dict] = []
    purchases: int | None = None
    folder = root / "requests" / str(request.public_id)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / "access-package.zip"
    staging = folder / f".access-package.{uuid.uuid4().hex}.zip"
    with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as package:
        for task in tasks:
            tables = _connector_tables(task, root)
            attachment = _attachment(task, root)
            if attachment is not None:
                package.write(attachment, f"{task.source.slug}/{attachment.name}")
            if task.source.kind == SourceKind.PREDICTION_LOG:
                predictions.extend(tables.get("predictions", []))
            if task.source.kind == SourceKind.LAKE and "transactions" in tables:
                purchases = (purchases or 0) + len(tables["transactions"])
            for name, rows in tables.items():
                package.writestr(f"{task.source.slug}/{name}.json", json.dumps(rows, indent=2))
                package.writestr(f"{task.source.slug}/{name}.csv", _csv(rows))
            sources.append(
                {
                    "name": task.source.name,
                    "slug": task.source.slug,
                    "tables": [(name, len(rows)) for name, rows in tables.items()],
                    "note": task.note,
                    "attachment": attachment.name if attachment else "",
                    "rows": sum(len(rows) for rows in tables.values()),
                    "sample": {name: rows[:20] for name, rows in tables.items()},
                }
            )
        summary = render_to_string(
            "datasubjects/package/summary.html",
            {
                "request": request,
                "sources": sources,
                "info": ART15_INFORMATION,
                "profiling": profiling_explanations(),
                "person": person_profiling(
                    predictions=predictions,
                    purchases=purchases,
                    suppressed=_suppressed_purposes(request),
                ),
                "built_at": timezone.now(),
            },
        )
        package.writestr("summary.html", summary)
    os.replace(staging, final)
    with transaction.atomic():
        DataSubjectRequest.objects.filter(pk=request.pk).update(
            package_file=str(final.relative_to(root)), package_built_at=timezone.now()
        )
        audit_record(
            action="dsr.package_built",
            actor=Actor.system("datasubjects.worker"),
            object_type=REQUEST_AUDIT_TYPE,
            object_id=request.audit_id,
            payload={"sources": {s["slug"]: s["rows"] for s in sources}},
        )
    request.refresh_from_db()
    return final


def package_link_token(*, request: DataSubjectRequest) -> str:
    return signing.dumps(str(request.public_id), salt=PACKAGE_LINK_SALT)


def package_link_url(*, request: DataSubjectRequest) -> str:
    token = package_link_token(request=request)
    return settings.PORTAL_BASE_URL + reverse("datasubjects:public_package", args=[token])


def package_request_for_token(token: str) -> DataSubjectRequest | None:
    """The request a package link names, while the link is fresh
    (DSAR_PACKAGE_LINK_HOURS); `signing.SignatureExpired` once it is not."""
    public_id = signing.loads(
        token, salt=PACKAGE_LINK_SALT, max_age=settings.DSAR_PACKAGE_LINK_HOURS * 3600
    )
    return DataSubjectRequest.objects.filter(public_id=public_id).first()

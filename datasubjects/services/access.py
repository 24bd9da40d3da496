"""The access package (Arts. 15 and 20): what every source holds about the person, as
JSON and CSV per source, with a readable HTML summary that carries the Art. 15
information and the explanation of the profiling.

Built by the worker once the last access task of a request is done, and again if a
task is re-run: the zip is written beside its final name and renamed into place.
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

from datasubjects.choices import REQUEST_AUDIT_TYPE, SourceKind, TaskAction, TaskState
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


def access_tasks_finished(*, request: DataSubjectRequest) -> bool:
    tasks = request.tasks.filter(action=TaskAction.ACCESS)
    return tasks.exists() and not tasks.exclude(state=TaskState.DONE).exists()


def access_package_build(*, request: DataSubjectRequest) -> Path:
    """Write the request's access package and record where it is.

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
            tables: dict[str, list] = {}
            if task.evidence_file.endswith(".json"):
                tables = json.loads((root / task.evidence_file).read_text())["tables"]
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

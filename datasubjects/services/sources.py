"""Writes for data sources and the per-source work of a request.

A started request fans out into one `SourceTask` per active source, each run by a
Celery worker on the portal's shared outbox steps (`portal.outbox`). A run claims its
task (row locked, state `running`, a lease), commits, then reads the source with no
lock held, writes its evidence file, and records the outcome under the lock again,
unless its lease ran out and another worker took the task over (that run's record
stands). A worker killed in the middle leaves the lease to run out and Celery
(acks_late) hands the message to another worker, which starts over: reading is
harmless to repeat and the evidence file is replaced atomically.
"""

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from datasubjects.choices import (
    CLOSED_STATES,
    KIND_ACTIONS,
    PACKAGE_KINDS,
    REQUEST_AUDIT_TYPE,
    SourceKind,
    TaskAction,
    TaskState,
)
from datasubjects.connectors import ConnectorError, Identity, connector_for
from datasubjects.models import (
    DataSource,
    DataSubjectRequest,
    SourceTask,
    VersionTrainedOnSubject,
)
from datasubjects.permissions import may_handle_requests, may_manage_sources
from datasubjects.pseudonyms import customer_ids_seal, customer_ids_unseal, customer_key
from datasubjects.selectors import sources_active
from governance.models import ModelVersion
from governance.selectors.registry import versions_trained_on
from portal.accounts.models import User
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.outbox import Outbox, outbox_send

SOURCE_AUDIT_TYPE = "data_source"
# Longer than the slowest source read we expect (a 1M-row lake, a remote database).
TASK_LEASE = timedelta(minutes=15)
TASK_MAX_ATTEMPTS = 5


def _task_audit(task: SourceTask, action: str, actor: Actor, payload: dict) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type=REQUEST_AUDIT_TYPE,
        object_id=task.request.audit_id,
        payload={"source": task.source.slug, "task_action": task.action, **payload},
    )


def _queue(task_ids: list[int]) -> None:
    from datasubjects.tasks import run_source_task  # noqa: PLC0415 -- task

    def queue() -> None:
        for task_id in task_ids:
            run_source_task.delay(task_id)

    transaction.on_commit(queue)


def source_tasks_create(*, request: DataSubjectRequest, actor: Actor) -> list[SourceTask]:
    """Fan a started request out into one task per active data source.

    Only access, portability and erasure requests have per-source work; a request that
    already has its tasks gets no new ones. Call inside the caller's transaction.
    Side effects: creates the tasks (manual sources wait for a person); queues the
    others on commit; records `dsr.tasks_created`.
    """
    action = KIND_ACTIONS.get(request.kind)
    if action is None or request.tasks.exists():
        return []
    tasks = [
        SourceTask.objects.create(
            request=request,
            source=source,
            action=action,
            state=TaskState.AWAITING_PERSON
            if source.kind == SourceKind.MANUAL
            else TaskState.PENDING,
        )
        for source in sources_active()
    ]
    if not tasks:
        return []
    audit_record(
        action="dsr.tasks_created",
        actor=actor,
        object_type=REQUEST_AUDIT_TYPE,
        object_id=request.audit_id,
        payload={"sources": [task.source.slug for task in tasks], "task_action": action},
    )
    _queue([task.pk for task in tasks if task.state == TaskState.PENDING])
    return tasks


def subject_identity(*, request: DataSubjectRequest) -> Identity:
    """The person to look for: the verified address and every customer id that the
    e-mail-keyed sources map it to (so id-keyed tables are found too).

    The sources are searched once per request: the ids found are kept on the request,
    sealed, and every later task reads them from there (`request_customers_resolve`).
    """
    ids = request_customers_resolve(request=request)
    return Identity(
        email=request.email, subject_ref=request.subject_ref, customer_ids=ids, resolved=True
    )


def request_customers_resolve(*, request: DataSubjectRequest) -> tuple[str, ...]:
    """The customer ids of the request's person, searched in the lake and SQL sources
    the first time and read back from the request afterwards.

    The search runs with no lock held (it reads outside systems); two workers that
    search at once find the same ids and the first to record them wins.
    Side effects (first time only): stores the ids sealed and their keyed hashes on
    the request (`customer_ids_sealed`, `customer_keys`, `customers_found_at`);
    records `dsr.customers_found` with the count only. ConnectorError if a source
    cannot be read (nothing is stored: the next attempt searches again).
    """
    stored = DataSubjectRequest.objects.filter(pk=request.pk).values(
        "customers_found_at", "customer_ids_sealed"
    )[0]
    if stored["customers_found_at"] is not None:
        return tuple(customer_ids_unseal(stored["customer_ids_sealed"]))
    ids: set[str] = set()
    for source in sources_active().filter(
        kind__in=[SourceKind.LAKE, SourceKind.SQL, SourceKind.BIGQUERY]
    ):
        ids |= connector_for(kind=source.kind, config=source.config).customer_ids(request.email)
    found = tuple(sorted(ids))
    with transaction.atomic():
        locked = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if locked.customers_found_at is not None:
            return tuple(customer_ids_unseal(locked.customer_ids_sealed))
        locked.customer_ids_sealed = customer_ids_seal(found)
        locked.customer_keys = sorted({customer_key(c) for c in found})
        locked.customers_found_at = timezone.now()
        locked.save(
            update_fields=[
                "customer_ids_sealed",
                "customer_keys",
                "customers_found_at",
                "updated_at",
            ]
        )
        audit_record(
            action="dsr.customers_found",
            actor=Actor.system("datasubjects.worker"),
            object_type=REQUEST_AUDIT_TYPE,
            object_id=locked.audit_id,
            payload={"customer_ids": len(found)},
        )
    request.customer_keys = locked.customer_keys
    request.customers_found_at = locked.customers_found_at
    return found


def _evidence_path(task: SourceTask) -> Path:
    return (
        Path(settings.DSAR_FILES_DIR)
        / "requests"
        / str(task.request.public_id)
        / f"{task.source.slug}.{task.action}.json"
    )


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    staging.write_text(json.dumps(content, indent=2, default=str))
    os.replace(staging, path)


@dataclass(frozen=True)
class TaskRun:
    task: SourceTask | None
    ran: bool  # False: done already, running elsewhere, or waiting for a person
    retry: bool = False  # failed, and worth another attempt


class ErasureIncomplete(Exception):
    """The source's verification query still finds the person after the erasure."""


@dataclass(frozen=True)
class _SourceOutcome:
    """What one run found or did in the source, to record on the task: its new state
    and fields, the audit event saying so, and for a lake erasure the lineage found
    (kept on the request) with the versions trained on it and their rows."""

    state: str
    fields: dict[str, Any]
    audit_action: str
    audit_payload: dict[str, Any]
    lineage: list[dict[str, Any]] | None = None
    trained_on: tuple[tuple[ModelVersion, int], ...] = ()


class _SourceTaskOutbox(Outbox[SourceTask, _SourceOutcome, TaskRun]):
    """A request's work in one source on the shared claim -> lease -> send -> record
    steps: the "send" reads (or erases in) the source and writes the evidence file."""

    model = SourceTask
    errors = (ConnectorError, OSError, ErasureIncomplete)

    def rows(self) -> QuerySet[SourceTask]:
        return SourceTask.objects.select_related("request", "source")

    def missing(self, pk: int) -> TaskRun:
        return TaskRun(task=None, ran=False)

    def claim(self, row: SourceTask, now: datetime) -> TaskRun | None:
        """Take the task unless it is done, waits for a person, belongs to a request
        closed meanwhile (refused or a duplicate: its work stops there, an erasure
        included), or another worker's lease on it still runs: state running, attempt
        counted, lease stamped."""
        if row.state in (TaskState.DONE, TaskState.AWAITING_PERSON):
            return TaskRun(task=row, ran=False)
        if row.request.state in CLOSED_STATES:
            return TaskRun(task=row, ran=False)
        if row.state == TaskState.RUNNING and row.lease_until and row.lease_until > now:
            return TaskRun(task=row, ran=False)  # another worker holds it
        row.state = TaskState.RUNNING
        row.attempts += 1
        row.lease_until = now + TASK_LEASE
        row.started_at = now
        row.error = ""
        row.save()
        return None

    def send(self, row: SourceTask) -> _SourceOutcome:
        identity = subject_identity(request=row.request)
        connector = connector_for(kind=row.source.kind, config=row.source.config)
        if row.action == TaskAction.ERASURE:
            return _erasure_run(row, connector, identity)
        finding = connector.find(identity)
        path = _evidence_path(row)
        _write_atomically(
            path,
            {"source": row.source.name, "tables": finding.tables, "queries": finding.queries},
        )
        return _SourceOutcome(
            state=TaskState.DONE,
            fields={
                "rows_found": finding.rows,
                "query": "\n".join(finding.queries),
                "evidence_file": str(path.relative_to(settings.DSAR_FILES_DIR)),
            },
            audit_action="dsr.source_task_done",
            audit_payload={"rows_found": finding.rows},
        )

    def in_flight(self, row: SourceTask) -> bool:
        return row.state == TaskState.RUNNING

    def taken_over(self, row: SourceTask) -> TaskRun:
        return TaskRun(task=row, ran=False)

    def record(
        self,
        row: SourceTask,
        *,
        outcome: _SourceOutcome | None,
        error: Exception | None,
        now: datetime,
    ) -> TaskRun:
        worker = Actor.system("datasubjects.worker")
        row.lease_until = None
        if error is not None:
            row.state, row.error = TaskState.FAILED, str(error)[:2000]
            row.save(update_fields=["state", "error", "lease_until"])
            _task_audit(row, "dsr.source_task_failed", worker, {"attempt": row.attempts})
            return TaskRun(task=row, ran=True, retry=row.attempts < TASK_MAX_ATTEMPTS)
        # Narrows the type for the checker: without an error the send returned.
        assert outcome is not None  # nosec B101
        if outcome.lineage is not None:
            DataSubjectRequest.objects.filter(pk=row.request_id).update(lineage=outcome.lineage)
            # One row per version: what the version page flags (a retry adds nothing).
            for version, rows in outcome.trained_on:
                VersionTrainedOnSubject.objects.get_or_create(
                    request_id=row.request_id,
                    version=version,
                    defaults={"snapshot": version.data_version, "rows": rows},
                )
        for name, value in outcome.fields.items():
            setattr(row, name, value)
        row.state = outcome.state
        fields = ["state", "lease_until", *outcome.fields]
        if outcome.state == TaskState.DONE:
            row.finished_at = now
            fields.append("finished_at")
        row.save(update_fields=fields)
        _task_audit(row, outcome.audit_action, worker, outcome.audit_payload)
        return TaskRun(task=row, ran=True)


def source_task_run(*, task_id: int) -> TaskRun:
    """Run one request's work in one source (access: find and keep the evidence).

    The shared outbox steps (`portal.outbox`): claim the task under its lock (running,
    with a lease), read the source holding no lock, record under the lock again unless
    the lease ran out and another worker took the task over (its record stands).
    Side effects: the task goes running → done (rows found, the queries, the evidence
    file under DSAR_FILES_DIR) or failed (the error); records `dsr.source_task_done`
    or `dsr.source_task_failed` with counts only, never the rows.
    """
    return outbox_send(_SourceTaskOutbox(), task_id)


def _erasure_run(task: SourceTask, connector: Any, identity: Identity) -> _SourceOutcome:
    """Erase in a source that can, then check with the verification query; in the lake
    (immutable, content-addressed snapshots) find the lineage impact and hand the rest
    to a person. ErasureIncomplete when the verification query still finds rows."""
    path = _evidence_path(task)
    evidence_file = str(path.relative_to(settings.DSAR_FILES_DIR))
    if not hasattr(connector, "erase"):
        snapshots = connector.snapshots_containing(identity)
        by_snapshot = dict(snapshots)
        versions = list(versions_trained_on(data_versions=list(by_snapshot)))
        lineage = [
            {
                "model": version.model.slug,
                "version": version.version,
                "snapshot": version.data_version,
                "rows": by_snapshot[version.data_version],
            }
            for version in versions
        ]
        _write_atomically(path, {"snapshots": snapshots, "lineage": lineage})
        note = (
            f"{len(snapshots)} lake snapshot(s) hold the person "
            f"({sum(by_snapshot.values())} rows); model versions trained on them: "
            + (", ".join(f"{v['model']} {v['version']}" for v in lineage) or "none")
            + ". Snapshots are immutable: the suppression list leaves the person out of "
            "the next training snapshot; retire or retrain the versions named, then "
            "record it here."
        )
        return _SourceOutcome(
            state=TaskState.AWAITING_PERSON,
            fields={
                "rows_found": sum(by_snapshot.values()),
                "query": "\n".join(f"snapshot {sid}: {rows} row(s)" for sid, rows in snapshots),
                "note": note,
                "evidence_file": evidence_file,
            },
            audit_action="dsr.lineage_found",
            audit_payload={
                "snapshots": len(snapshots),
                "versions": [f"{v['model']}@{v['version']}" for v in lineage],
            },
            lineage=lineage,
            trained_on=tuple((v, by_snapshot[v.data_version]) for v in versions),
        )
    erasure = connector.erase(identity, task.source.config.get("erasure") or {})
    _write_atomically(
        path,
        {
            "rows_changed": erasure.rows_changed,
            "rows_held": erasure.rows_held,
            "holds": erasure.holds,
            "queries": erasure.queries,
            "remaining": erasure.remaining,
        },
    )
    if erasure.remaining:
        raise ErasureIncomplete(f"the verification query still finds {erasure.remaining} row(s)")
    return _SourceOutcome(
        state=TaskState.DONE,
        fields={
            "rows_found": erasure.rows_changed + erasure.rows_held,
            "rows_changed": erasure.rows_changed,
            "query": "\n".join(erasure.queries),
            "note": "; ".join(f"{t} kept: {why}" for t, why in erasure.holds.items()),
            "evidence_file": evidence_file,
        },
        audit_action="dsr.source_task_done",
        audit_payload={
            "rows_changed": erasure.rows_changed,
            "rows_held": erasure.rows_held,
            "remaining": 0,
        },
    )


def _queue_package_build(request: DataSubjectRequest) -> None:
    """After commit, have a worker build the access package if this closed the last
    access task (`access_package_ensure` decides, and builds it once)."""
    from datasubjects.tasks import build_access_package  # noqa: PLC0415 -- task

    transaction.on_commit(lambda: build_access_package.delay(request.pk))


def source_task_record_manual(
    *, task: SourceTask, note: str, attachment: UploadedFile | None, user: User
) -> SourceTask:
    """A privacy officer records what was done by hand in a source: one without a
    connector, or a task its connector could not finish (pending, running or failed),
    the note saying why, so that the request can be completed.

    A running task closed this way keeps this record: the worker's outcome is dropped
    (its claim is no longer in flight). Refused (ValidationError, code
    `request_closed`, nothing changed) once the request is closed: completed, refused
    or a duplicate.
    Side effects: the task is done with the note (and the attachment kept under
    DSAR_FILES_DIR beside, never over, the connector's evidence); records
    `dsr.source_task_done` (manual, with the state it was in); for an access or
    portability request, queues the package build after commit (built if this was
    the last access task).
    """
    if not may_handle_requests(user):
        raise PermissionDenied("Only privacy officers record manual work.")
    if not note.strip():
        raise ValidationError({"note": "Say what was done in this source."})
    with transaction.atomic():
        task = (
            SourceTask.objects.select_for_update(of=("self",))
            .select_related("request", "source")
            .get(pk=task.pk)
        )
        # The request's row too, after the task's (the worker's record takes them in
        # that order): a refusal or completion committing meanwhile is seen here.
        task.request = DataSubjectRequest.objects.select_for_update().get(pk=task.request_id)
        if task.request.state in CLOSED_STATES:
            closed = task.request.get_state_display().lower()
            raise ValidationError(
                {
                    "note": ValidationError(
                        f"This request is {closed}: the work in its sources can no "
                        "longer be recorded.",
                        code="request_closed",
                    )
                }
            )
        if task.state == TaskState.DONE:
            raise ValidationError({"note": "This task is done already."})
        was = task.state
        task.note = note.strip()
        if attachment is not None:
            suffix = Path(attachment.name).suffix.lower()[:10]
            # Named apart from the connector's `<slug>.<action>.json`, which the
            # package and the completion notice read as the connector's findings.
            path = _evidence_path(task).with_name(
                f"{task.source.slug}.{task.action}.attachment{suffix}"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                for chunk in attachment.chunks():
                    out.write(chunk)
            task.evidence_file = str(path.relative_to(settings.DSAR_FILES_DIR))
        task.state = TaskState.DONE
        task.finished_at = timezone.now()
        task.save()
        _task_audit(task, "dsr.source_task_done", user.audit_actor(), {"manual": True, "was": was})
        if task.request.kind in PACKAGE_KINDS:
            _queue_package_build(task.request)
    return task


# --- the registry of sources --------------------------------------------------------------


def data_source_save(
    *,
    user: User,
    slug: str,
    name: str,
    kind: str,
    lookup_key: str,
    config: dict[str, Any],
    active: bool = True,
) -> DataSource:
    """Register a data source, or change the one with this slug (portal admins).

    Side effects: creates or updates the source; records `datasubjects.source_saved`
    (the config's keys, not its values: a URL may carry a password).
    """
    if not may_manage_sources(user):
        raise PermissionDenied("Only portal admins manage data sources.")
    if kind != SourceKind.MANUAL and kind != SourceKind.PORTAL:
        try:
            connector_for(kind=kind, config=config)
        except ConnectorError as error:
            raise ValidationError({"config": str(error)}) from error
    with transaction.atomic():
        source, created = DataSource.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "kind": kind,
                "lookup_key": lookup_key,
                "config": config,
                "active": active,
            },
        )
        audit_record(
            action="datasubjects.source_saved",
            actor=user.audit_actor(),
            object_type=SOURCE_AUDIT_TYPE,
            object_id=source.slug,
            payload={
                "created": created,
                "kind": kind,
                "active": active,
                "config_keys": sorted(config),
            },
        )
    return source


@dataclass(frozen=True)
class SourceCheck:
    ok: bool
    message: str


def data_source_check(*, source: DataSource) -> SourceCheck:
    """Try the source's connection and say what it holds (no side effects)."""
    if source.kind == SourceKind.MANUAL:
        return SourceCheck(ok=True, message="A person does the work in this source.")
    try:
        return SourceCheck(
            ok=True, message=connector_for(kind=source.kind, config=source.config).check()
        )
    except ConnectorError as error:
        return SourceCheck(ok=False, message=str(error))

"""Imports of the client's data into the lake, asked for from the Training pages and run
by a worker: the same import as `manage.py lake_import` (pipelines.sources), as a
persisted job with its progress, its rejection report and its audit trail.

Execution is safe to repeat: the task claims the job (queued or, after a lost worker,
running) under the row lock, imports without holding any lock (it may take minutes and
reads from Google's APIs), and writes the outcome under the lock again. The lake is
content-addressed, so a second delivery of the same job finds the snapshot the first
wrote and records it, without a second copy.
"""

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from governance.training.choices import ACTIVE_IMPORT_STATES, IMPORT_TABLES, ImportState
from governance.training.clients import import_endpoints
from governance.training.models import LakeImport
from portal.audit.actors import Actor
from portal.audit.services import audit_record
from portal.outbound import private_address_of

logger = logging.getLogger(__name__)

AUDIT_OBJECT_TYPE = "lake_import"
IMPORT_ACTOR = Actor.system("lake-import")
PROGRESS_EVERY_SECONDS = 1.0  # the progress row is written at most this often
REMOTE_SCHEMES = ("gs://", "bq://", "dvc://")
REMOTE_GIT_PREFIXES = ("https://", "ssh://", "git@")  # the git URLs a DVC source may name


def _audit(job: LakeImport, action: str, actor: Actor, payload: dict, client_ip=None) -> None:
    audit_record(
        action=action,
        actor=actor,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=job.pk,
        payload=payload,
        client_ip=client_ip,
    )


def _inside_import_root(path: str) -> bool:
    root = Path(settings.PIPELINES_IMPORT_ROOT).resolve()
    resolved = Path(path).resolve()
    return resolved == root or root in resolved.parents


def _git_host(repo: str) -> str:
    """The host of a remote git URL: https://host/..., ssh://user@host:port/... or the
    scp form git@host:path."""
    if repo.startswith("git@"):
        return repo.removeprefix("git@").split(":", 1)[0]
    return urlsplit(repo).hostname or ""


def import_source_check(*, uri: str) -> str:
    """The source if this portal may import it, else ValidationError saying why: a
    malformed gs://, bq:// or dvc:// URI, a local path (or local DVC repository)
    outside PIPELINES_IMPORT_ROOT, which keeps the form from reading any file of the
    machine the portal runs on, or a DVC repository whose git host resolves to a
    private, loopback or link-local address and is not in PIPELINES_DVC_ALLOWED_HOSTS.
    A local path comes back absolute, a relative one taken as relative to
    PIPELINES_IMPORT_ROOT."""
    from pipelines.importer import ImportFailed  # -- slow
    from pipelines.sources import DVC_URI, check_source_uri  # -- slow

    uri = (uri or "").strip()
    try:
        check_source_uri(uri)
    except ImportFailed as error:
        raise ValidationError(str(error)) from None
    if uri.startswith("dvc://"):
        repo = DVC_URI.match(uri).group("repo")  # type: ignore[union-attr]
        remote = repo.startswith(REMOTE_GIT_PREFIXES)
        if "://" in repo and not remote:
            # file://, ext:: and the like would read (or run) anything on this machine.
            raise ValidationError(
                "A DVC repository's git URL must start with https://, ssh:// or git@; "
                f"one on this machine must be inside the import folder "
                f"({settings.PIPELINES_IMPORT_ROOT})."
            )
        if not remote and not _inside_import_root(repo):
            raise ValidationError(
                "A DVC repository on this machine must be inside the import folder "
                f"({settings.PIPELINES_IMPORT_ROOT}); or give its git URL."
            )
        # The same rule as webhook targets: a typed URL must not make the worker reach
        # what only it can (the cluster's services, the metadata server).
        host = _git_host(repo) if remote else ""
        if (
            remote
            and host not in settings.PIPELINES_DVC_ALLOWED_HOSTS
            and (address := private_address_of(host))
        ):
            raise ValidationError(
                f"The DVC repository's host {host} resolves to {address}, a private or "
                "local address; add it to PIPELINES_DVC_ALLOWED_HOSTS if it really is "
                "your git server."
            )
    elif not uri.startswith(REMOTE_SCHEMES):
        # A relative name is one in the import folder (the form asks for "a file in the
        # import folder"), never one in the web server's working directory.
        uri = str((Path(settings.PIPELINES_IMPORT_ROOT) / uri).resolve())
        if not _inside_import_root(uri):
            raise ValidationError(
                "A local file must be inside the import folder "
                f"({settings.PIPELINES_IMPORT_ROOT}); or give a gs://, bq:// or dvc:// source."
            )
    return uri


def lake_import_start(
    *,
    sources: Sequence[tuple[str, str]],
    mapping: dict[str, dict[str, str]],
    max_rejected: float,
    actor: Actor,
    client_ip: str | None = None,
    queue: bool = True,
) -> LakeImport:
    """Record an import of `sources` ((table, uri) pairs, one per table, transactions
    required) with the column `mapping` ({table: {theirs: ours}}) and the rejection
    limit `max_rejected` (a share, 0 to 1), and queue it.

    Raises ValidationError naming the field (`sources`, `<table>`, `mapping`,
    `max_rejected`). Side effects: audit `lake_import.requested`; with `queue`, the
    task `training.lake_import` is sent once the transaction commits.
    """
    errors: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for table, uri in sources:
        if table not in IMPORT_TABLES:
            errors.setdefault("sources", []).append(f"No lake table {table!r}.")
            continue
        if table in seen:
            errors.setdefault(table, []).append("One source per table.")
            continue
        try:
            seen[table] = import_source_check(uri=uri)
        except ValidationError as error:
            errors.setdefault(table, []).extend(error.messages)
    if "transactions" not in seen and "transactions" not in errors:
        errors.setdefault("transactions", []).append("The transactions table is required.")
    stray = sorted(set(mapping) - set(seen))
    if stray:
        errors.setdefault("mapping", []).append(
            f"The mapping is for {', '.join(stray)}, which has no source."
        )
    if not isinstance(max_rejected, int | float) or not 0 <= max_rejected <= 1:
        errors.setdefault("max_rejected", []).append("A share from 0 to 1 (e.g. 0.05).")
    if errors:
        raise ValidationError(errors)
    ordered = [{"table": t, "uri": seen[t]} for t in IMPORT_TABLES if t in seen]
    with transaction.atomic():
        job = LakeImport.objects.create(
            sources=ordered,
            mapping={t: dict(m) for t, m in mapping.items()},
            max_rejected=float(max_rejected),
            requested_by=actor.ref[:80],
        )
        _audit(
            job,
            "lake_import.requested",
            actor,
            {
                "sources": ordered,
                "mapping_tables": sorted(mapping),
                "max_rejected": job.max_rejected,
            },
            client_ip,
        )
        if queue:
            job_id = job.pk
            transaction.on_commit(lambda: _queue_run(job_id))
    return job


def _queue_run(job_id: int) -> None:
    from governance.training.tasks import lake_import_task  # noqa: PLC0415 -- task

    lake_import_task.delay(job_id)


class _ProgressWriter:
    """Turns the import's (stage, done, total) callbacks into the job's percent and
    stage, written at most once a second: each stage (a fetch, a table's import) is an
    equal share of the bar."""

    def __init__(self, job: LakeImport) -> None:
        self.job_id = job.pk
        remote = [s for s in job.sources if s["uri"].startswith(("bq://", "dvc://"))]
        self.stages_total = len(job.sources) + len(remote)
        self.stages: list[str] = []
        self.written_at = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.stages:
            self.stages.append(stage)
        share = min(done / total, 1.0) if total else 1.0
        finished = self.stages.index(stage) + share
        percent = int(min(99, 100 * finished / max(self.stages_total, len(self.stages))))
        now = time.monotonic()
        if now - self.written_at < PROGRESS_EVERY_SECONDS and share < 1.0:
            return
        self.written_at = now
        LakeImport.objects.filter(pk=self.job_id, state=ImportState.RUNNING).update(
            progress=percent, stage=f"{stage}: {share:.0%}"[:200]
        )


def lake_import_run(*, import_id: int) -> LakeImport:
    """Run the import `import_id` unless it already finished (idempotent). Each source is
    held to `import_source_check` again first: one it refuses fails the job unread.

    Side effects: the job's state, progress and stage while it runs; a new snapshot in
    PIPELINES_LAKE_ROOT when the data is new; then the outcome (snapshot, data version,
    rejection report or the reason it failed) and audit `lake_import.succeeded`,
    `lake_import.refused` or `lake_import.failed`, in one transaction.
    """
    from pipelines.importer import ImportFailed, ImportRefused  # -- slow
    from pipelines.sources import import_uris  # -- slow

    with transaction.atomic():
        job = LakeImport.objects.select_for_update().get(pk=import_id)
        if job.state not in ACTIVE_IMPORT_STATES:
            return job
        job.state, job.attempts = ImportState.RUNNING, job.attempts + 1
        job.started_at = job.started_at or timezone.now()
        job.progress, job.stage = 0, "starting"
        job.save(update_fields=["state", "attempts", "started_at", "progress", "stage"])
    result: Any = None
    report: dict[str, Any] = {}
    try:
        # Checked again where the files are read: a job queued before a rule tightened
        # (or a local file swapped for a link since) is held to today's rule.
        for source in job.sources:
            try:
                import_source_check(uri=source["uri"])
            except ValidationError as refused:
                raise ImportFailed(f"{source['uri']}: {' '.join(refused.messages)}") from None
        result = import_uris(
            root=settings.PIPELINES_LAKE_ROOT,
            items=[(s["table"], s["uri"]) for s in job.sources],
            endpoints=import_endpoints(),
            progress=_ProgressWriter(job),
            mapping=job.mapping,
            max_rejected=job.max_rejected,
        )
    except ImportRefused as refused:
        state, outcome, report = ImportState.REFUSED, str(refused), refused.report.to_dict()
    except ImportFailed as error:
        state, outcome = ImportState.FAILED, str(error)
    except Exception as error:  # an unexpected fault is recorded, never left "running"
        logger.exception("lake import %s failed", import_id)
        state, outcome = ImportState.FAILED, f"Unexpected error: {type(error).__name__}: {error}"
    else:
        state, report = ImportState.SUCCEEDED, result.report.to_dict()
        outcome = "New snapshot." if result.created else "The lake already held this content."
    with transaction.atomic():
        job = LakeImport.objects.select_for_update().get(pk=import_id)
        if job.state != ImportState.RUNNING:
            return job
        job.state, job.outcome, job.report = state, outcome[:4000], report
        job.finished_at = timezone.now()
        job.progress = 100
        job.stage = ""
        if result is not None:
            job.snapshot_id = result.snapshot.id
            job.data_version = str(result.snapshot.source.get("data_version", ""))[:1000]
            job.created_snapshot = result.created
        job.save()
        _audit(
            job,
            f"lake_import.{state}",
            IMPORT_ACTOR,
            {
                "snapshot": job.snapshot_id,
                "data_version": job.data_version,
                "rows_rejected": int(report.get("rows_rejected", 0)),
                "outcome": job.outcome[:300],
            },
        )
    return job

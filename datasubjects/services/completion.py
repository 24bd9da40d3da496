"""What completing a request takes and what the requester is told (GDPR Arts. 12(3)
and 19): a request completes only when each of its source tasks is done, and the
requester is then e-mailed what was done."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from datasubjects.choices import TaskAction, TaskState
from datasubjects.models import DataSubjectRequest, SourceTask


def unfinished_tasks(*, request: DataSubjectRequest) -> list[SourceTask]:
    """The request's source tasks not done yet (pending, running, failed or waiting
    for a person), with their sources, in source order."""
    return list(request.tasks.exclude(state=TaskState.DONE).select_related("source"))


@dataclass(frozen=True)
class SourceDone:
    """What one source did for the request, as the requester is told it.

    `rows_found`: the person's records found there (None if nobody counted them, e.g.
    recorded by hand); `rows_changed`: erased or masked (erasure; None when a person
    did the work, as in the lake's immutable snapshots); `rows_held`
    and `holds` {table: Art. 17(3) exemption}: kept under a legal hold (erasure only).
    """

    source: str
    action: str
    rows_found: int | None
    rows_changed: int | None
    rows_held: int = 0
    holds: dict[str, str] = field(default_factory=dict)


def _erasure_evidence(task: SourceTask) -> dict:
    """The erasure evidence file's content, or {} when there is none (a source a
    person handled, whose attachment is theirs and not ours to read, or a file gone)."""
    if not task.evidence_file.endswith(f".{task.action}.json"):
        return {}
    path = Path(settings.DSAR_FILES_DIR) / task.evidence_file
    try:
        evidence = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return evidence if isinstance(evidence, dict) else {}


def completion_summary(*, request: DataSubjectRequest) -> list[SourceDone]:
    """Per source task of the request, what was done: counts and, for an erasure,
    the rows kept under a legal hold with their exemption (from the evidence file)."""
    done = []
    for task in request.tasks.select_related("source").order_by("source__name", "pk"):
        evidence = _erasure_evidence(task) if task.action == TaskAction.ERASURE else {}
        holds = evidence.get("holds") or {}
        done.append(
            SourceDone(
                source=task.source.name,
                action=task.action,
                rows_found=task.rows_found,
                rows_changed=task.rows_changed,
                rows_held=int(evidence.get("rows_held") or 0),
                holds={str(table): str(why) for table, why in holds.items()},
            )
        )
    return done

"""The outbox every sender in the portal shares: claim, lease, send, record.

A row in an outbox table says "this must reach an outside system" (a webhook, an
e-mail, an answer to Cloud Deploy, an attestation in Container Analysis, the ledger's
copy in Cloud Logging, a data subject request's work in one data source). The row is
written in the transaction that decided it was owed, so it exists exactly when that
decision committed. Sending it takes three steps:

1. **Claim**, a short transaction: lock the row (`SELECT ... FOR UPDATE`), let the
   sender decide whether this run may take it (still pending and due, or taken by a
   run whose lease has run out), count the attempt and stamp the lease, commit.
2. **Send**, holding no lock and no transaction: the outside call may take seconds,
   and on SQLite (the demo's database) a write transaction locks the whole database.
   The errors the sender names are caught and recorded; anything else propagates and
   the lease runs out.
3. **Record**, a second short transaction: lock the row again. When its attempt
   count moved on or it left its in-flight state, our lease ran out and another run
   took the row over: that run's record stands and ours is dropped. Otherwise the
   sender records the outcome (sent, retry after a backoff, failed) and its audit
   event, so the chain head is locked last, as DESIGN.md's lock order says.

Outboxes whose rows fail for good after a number of attempts (the Cloud Deploy
answers, the attestations) record a failed send with `outbox_failure_record`: back to
pending while the error is retryable and attempts remain, failed (finished) otherwise.

A worker that dies between the send and the record leaves the row in flight; once
the lease has run out the next run takes it again, so each sender either asks the
outside system first (Cloud Deploy, Container Analysis) or relies on the receiver
deduplicating (webhook event ids, Cloud Logging's insertId).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

RowT = TypeVar("RowT", bound=Model)
OutcomeT = TypeVar("OutcomeT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `base_seconds * 2 ** (attempts - 1)`, capped at
    `max_seconds` when given (30 s, 60 s, 120 s, ... with the defaults)."""

    base_seconds: int = 30
    max_seconds: int | None = None

    def seconds(self, attempts: int) -> int:
        """Seconds to wait after the `attempts`-th failed attempt (0 or 1 give the base)."""
        wait = self.base_seconds * 2 ** max(0, attempts - 1)
        return wait if self.max_seconds is None else min(self.max_seconds, wait)


def lease_left(*, taken_at: datetime | None, lease: timedelta, now: datetime) -> timedelta | None:
    """How long a lease taken at `taken_at` still runs (None when it has run out).

    A row marked in flight without a time counts as taken now, so it is left alone
    for one lease rather than sent twice at once."""
    held_until = (taken_at or now) + lease
    return held_until - now if held_until > now else None


class Outbox(ABC, Generic[RowT, OutcomeT, ResultT]):
    """One kind of outbox row and how to send it; `outbox_send` runs the three steps.

    Subclasses say which rows (`rows`), what to do under the claim's lock (`claim`:
    a result to stop with, or None once the row is taken and saved), the outside call
    (`send`, returning an outcome; the exceptions in `errors` are recorded instead),
    whether a locked row is still the one this attempt claimed (`in_flight`), and how
    to record the outcome under the lock again (`record`)."""

    model: ClassVar[type[Model]]
    # Exceptions of the outside call that are recorded as the attempt's outcome.
    errors: ClassVar[tuple[type[Exception], ...]] = ()

    def rows(self) -> QuerySet[Any]:
        """The rows a claim looks in (add select_related here)."""
        return self.model._default_manager.all()

    @abstractmethod
    def missing(self, pk: int) -> ResultT:
        """The result when no row has this id."""

    @abstractmethod
    def claim(self, row: RowT, now: datetime) -> ResultT | None:
        """Under the row's lock: a result when this run must not send it (done, not
        due, lease held, no longer wanted); None once the row is marked in flight
        (attempt counted, lease stamped) and saved."""

    @abstractmethod
    def send(self, row: RowT) -> OutcomeT:
        """The outside call, with no lock held."""

    @abstractmethod
    def in_flight(self, row: RowT) -> bool:
        """Whether the locked row is still in the state a claim leaves it in."""

    @abstractmethod
    def taken_over(self, row: RowT) -> ResultT:
        """The result when another run took the row over while we were sending."""

    @abstractmethod
    def record(
        self, row: RowT, *, outcome: OutcomeT | None, error: Exception | None, now: datetime
    ) -> ResultT:
        """Under the row's lock again: record the outcome (or the error) and audit it."""

    def attempt_of(self, row: RowT) -> int:
        """The attempt counter a claim increments (the `attempts` field by default)."""
        return int(row.attempts)  # type: ignore[attr-defined]


def outbox_claim(outbox: Outbox[RowT, Any, ResultT], pk: int) -> RowT | ResultT:
    """Step 1: in a short transaction, lock row `pk` and let the outbox claim it.
    Returns the claimed row, or the outbox's result when this run must not send."""
    with transaction.atomic():
        row = outbox.rows().select_for_update(of=("self",)).filter(pk=pk).first()
        if row is None:
            return outbox.missing(pk)
        stop = outbox.claim(row, timezone.now())
        if stop is not None:
            return stop
    return row


def outbox_record(
    outbox: Outbox[RowT, OutcomeT, ResultT],
    row: RowT,
    *,
    outcome: OutcomeT | None = None,
    error: Exception | None = None,
) -> ResultT:
    """Step 3: in a short transaction, lock the row again and record the attempt's
    outcome, unless another run took the row over since `row` was claimed."""
    attempt = outbox.attempt_of(row)
    with transaction.atomic():
        locked = outbox.model._default_manager.select_for_update().get(pk=row.pk)
        if not outbox.in_flight(locked) or outbox.attempt_of(locked) != attempt:
            # Our lease ran out and another run took the row over: its record stands.
            return outbox.taken_over(locked)
        return outbox.record(locked, outcome=outcome, error=error, now=timezone.now())


def outbox_failure_record(
    row: Any,
    *,
    error: Exception,
    now: datetime,
    max_attempts: int,
    retry_state: str,
    failed_state: str,
    what: str,
) -> bool:
    """Record a failed send on a row with `state`, `attempts`, `last_error` and
    `finished_at`; call it from an outbox's `record` (the row is locked).

    Returns True when the row is back in `retry_state` for another attempt: the error
    says trying again may help (its `retryable` is true) and fewer than `max_attempts`
    were made. Returns False when the row is `failed_state` for good, finished `now`
    (the caller audits that). Side effects: the row saved, with the error (cut to
    1,000 characters) as `last_error`; a log line naming `what` and the row's id.
    """
    row.last_error = str(error)[:1000]
    if getattr(error, "retryable", False) and row.attempts < max_attempts:
        row.state = retry_state
        row.save()
        logger.warning(
            "%s %s failed (attempt %s), will retry: %s", what, row.pk, row.attempts, error
        )
        return True
    row.state, row.finished_at = failed_state, now
    row.save()
    logger.error("%s %s failed for good: %s", what, row.pk, error)
    return False


def outbox_send(outbox: Outbox[RowT, Any, ResultT], pk: int) -> ResultT:
    """Claim row `pk`, send it holding no lock, record the outcome: at most one
    attempt. Errors of the kinds in `outbox.errors` are recorded; any other exception
    propagates with the row left in flight until its lease runs out."""
    claimed = outbox_claim(outbox, pk)
    if not isinstance(claimed, outbox.model):
        return claimed  # type: ignore[return-value]
    try:
        outcome = outbox.send(claimed)
    except outbox.errors as exc:
        return outbox_record(outbox, claimed, error=exc)
    return outbox_record(outbox, claimed, outcome=outcome)

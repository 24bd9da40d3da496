"""Writing one event onto the chain: lock the head, write the event, its payload and the
new head. `portal.audit.services.audit_record` is the one caller; it hashes, these write.

Two ways to write the same rows:

- PostgreSQL: two statements on the connection's cursor. `SELECT ... FOR UPDATE` on the
  head, then one data-modifying statement that inserts the event, inserts its payload
  and moves the head (a CTE), so an append costs two round trips inside the caller's
  transaction and builds no model instance to save. Appending is the cost every state
  change in the portal pays; the ORM's three saves were most of it.
- Any other database (SQLite, the embedded default): the ORM, as the models say.

Both lock the head row until the caller's transaction ends (see services' lock order),
and both write exactly what the other would: the payload is sent as its canonical JSON,
which the column reads back as the same value, and the client IP through the field's
own conversion.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, transaction

from portal.audit.hashing import EVENT_COLUMNS
from portal.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditPayload

_LOCK_HEAD = "SELECT sequence, hash FROM {head} WHERE id = 1 FOR UPDATE"

# The head row is locked by the caller's transaction, so the UPDATE finds it; its
# RETURNING hands back the new event's id. The payload's foreign key is checked at
# commit (Django's constraints are deferred), when the event row exists.
_APPEND = """
WITH event AS (
    INSERT INTO {events} ({event_columns})
    VALUES ({event_values})
    RETURNING id
), payload AS (
    INSERT INTO {payloads} (event_id, data, client_ip, redacted_at, redaction_reason)
    SELECT id, %s::jsonb, %s, NULL, '' FROM event
)
UPDATE {head} SET sequence = %s, hash = %s WHERE id = 1
RETURNING (SELECT id FROM event)
"""


@dataclass(frozen=True)
class ChainHead:
    """The last event's sequence and hash, read under the head's lock."""

    sequence: int
    hash: str


@dataclass(frozen=True)
class NewEvent:
    """An event ready to write: its chained fields (`fields`, by column name, with
    `hash`), its payload as stored (`data`) and that payload's canonical JSON
    (`data_json`, UTF-8)."""

    fields: dict[str, Any]
    data: dict[str, Any]
    data_json: bytes
    client_ip: str | None


_CLIENT_IP_FIELD = AuditPayload._meta.get_field("client_ip")


def _quoted(model: type[AuditEvent | AuditPayload | AuditChainHead]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def client_ip_stored_form(client_ip: str | None) -> str | None:
    """The address as the column gives it back: IPv6 compressed and in lower case (the
    field's own cleaning, which PostgreSQL's inet agrees with), an empty one as None.
    The payload digest is over this form, as it is over the payload's stored form."""
    return _CLIENT_IP_FIELD.get_prep_value(client_ip) or None


@cache
def _postgresql_statements() -> tuple[str, str]:
    """(lock the head, append), with the tables' names."""
    append = _APPEND.format(
        events=_quoted(AuditEvent),
        event_columns=", ".join(EVENT_COLUMNS),
        event_values=", ".join(["%s"] * len(EVENT_COLUMNS)),
        payloads=_quoted(AuditPayload),
        head=_quoted(AuditChainHead),
    )
    return _LOCK_HEAD.format(head=_quoted(AuditChainHead)), append


def chain_head_lock() -> ChainHead:
    """Lock the chain head row until the transaction ends and read it; creates the row
    (from the last event, or the genesis) on a database that has none yet."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_postgresql_statements()[0])
            row = cursor.fetchone()
        if row is not None:
            return ChainHead(sequence=row[0], hash=row[1])
    head = _chain_head_lock_orm()
    return ChainHead(sequence=head.sequence, hash=head.hash)


def _chain_head_lock_orm() -> AuditChainHead:
    # Every appender takes the head row FOR UPDATE, so concurrent transactions append
    # one after the other and each sees the hash the previous one committed.
    try:
        return AuditChainHead.objects.select_for_update().get(pk=1)
    except AuditChainHead.DoesNotExist:
        last = AuditEvent.objects.order_by("-sequence").first()
        try:
            with transaction.atomic():
                AuditChainHead.objects.create(
                    pk=1,
                    sequence=last.sequence if last else 0,
                    hash=last.hash if last else GENESIS_HASH,
                )
        except IntegrityError:
            pass  # another appender created it first; lock theirs
        return AuditChainHead.objects.select_for_update().get(pk=1)


def chain_append(new: NewEvent) -> AuditEvent:
    """Write `new` after the head the caller locked (chain_head_lock), in the caller's
    transaction, and move the head to it: one statement on PostgreSQL, the ORM
    elsewhere. Returns the event as saved (its payload not loaded)."""
    if connection.vendor == "postgresql":
        return chain_append_postgresql(new)
    return chain_append_orm(new)


def chain_append_postgresql(new: NewEvent) -> AuditEvent:
    """chain_append's PostgreSQL statement (a CTE writing all three rows)."""
    fields = new.fields
    client_ip = _CLIENT_IP_FIELD.get_db_prep_value(new.client_ip, connection, prepared=False)
    params = [
        *(fields[column] for column in EVENT_COLUMNS),
        new.data_json.decode(),
        client_ip,
        fields["sequence"],
        fields["hash"],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_postgresql_statements()[1], params)
        (event_id,) = cursor.fetchone()
    event = AuditEvent(id=event_id, **fields)
    event._state.adding = False
    event._state.db = connection.alias
    return event


def chain_append_orm(new: NewEvent) -> AuditEvent:
    """chain_append through the ORM: three saves."""
    event = AuditEvent.objects.create(**new.fields)
    AuditPayload.objects.create(event=event, data=new.data, client_ip=new.client_ip)
    AuditChainHead.objects.filter(pk=1).update(
        sequence=new.fields["sequence"], hash=new.fields["hash"]
    )
    return event

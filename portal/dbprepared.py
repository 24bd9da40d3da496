"""A cursor whose queries PostgreSQL plans once per connection: for the few fixed
queries that run on nearly every request of a busy endpoint (the deployment gate),
where planning costs the server more than running them.

Django's cursors bind parameters on the client (psycopg's ClientCursor), which never
prepares. `cursor_prepared` gives a psycopg cursor that binds on the server and asks
psycopg to prepare every query it runs, wrapped as Django wraps its own cursors (the
same query log, execute wrappers and error translation), so a query through it counts
and fails as any other. psycopg keeps the prepared statements per connection, prepares
again on a new connection, and forgets them on a rollback or a schema change it sees.

Prepared statements are on when the database's OPTIONS set `prepare_threshold`
(settings: DATABASE_PREPARED_STATEMENTS, on by default); with `prepare_threshold`
None (Django's default, and what a connection pooler in transaction mode without
prepared-statement support needs) the same cursor runs its queries unprepared. Only
queries whose SQL is fixed belong here: each distinct text is one statement on the
server (psycopg keeps at most `prepared_max`, 100 by default, per connection).
On another database vendor this is Django's own cursor. Timestamps come back aware,
in the connection's time zone (Django's cursor would use the current setting's, which
differs only after TIME_ZONE changed in a running process): the same instants.
"""

from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper


class _PreparingCursor(psycopg.Cursor):
    """psycopg's server-binding cursor, preparing each query it runs (Django's wrapper
    passes only the SQL and parameters, so the choice is made here)."""

    def execute(self, query: Any, params: Any = None, *, prepare: Any = None, **kwargs: Any) -> Any:
        return super().execute(query, params, prepare=True, **kwargs)


def cursor_prepared(*, using: str = DEFAULT_DB_ALIAS) -> CursorWrapper:
    """A cursor on database `using` whose queries are prepared on a PostgreSQL server
    (see the module's docstring); Django's own cursor on another database. Use it as
    `with cursor_prepared() as cursor:`."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return connection.cursor()
    # What connection.cursor() does before making its cursor.
    connection.validate_thread_sharing()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = _PreparingCursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    return connection.make_cursor(cursor)

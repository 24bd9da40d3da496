"""Connectors: how the portal finds (and later erases) a person in each data source.

Each kind of `DataSource` has one connector, built from the source's `config`:

- `lake`: the Parquet lake the training pipelines read (every snapshot it holds), read
  a batch at a time so memory follows the batch and the rows found;
- `sql`: a database reached over SQL (SQLite file or PostgreSQL), tables and key
  columns named in the config, values always passed as query parameters;
- `portal`: the portal's own records about the person (their requests and the audit
  events about them);
- `bigquery`: tables in BigQuery (google-cloud-bigquery), found and erased with
  parameterised GoogleSQL (DML DELETE).
- `prediction_log`: the model server's JSON lines log of predictions, by customer id.

Config identifiers (tables, columns) are checked against a strict pattern before they
reach a query, because they are written into the SQL text (they cannot be parameters).
Connectors talk to the data only; the services decide what to do with what they find.
"""

import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.crypto import salted_hmac

from datasubjects.choices import REQUEST_AUDIT_TYPE, SourceKind
from datasubjects.selectors import portal_records_for
from portal.audit.actors import Actor
from portal.audit.services import audit_payloads_redact

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


class ConnectorError(Exception):
    """The source could not be read: misconfigured or unreachable (the task retries)."""


@dataclass(frozen=True)
class Identity:
    """Who to look for: the address the request was verified with, and the customer
    ids the sources keyed by e-mail map it to."""

    email: str
    subject_ref: str
    customer_ids: tuple[str, ...] = ()
    # True when `customer_ids` already holds every id the e-mail-keyed sources map the
    # address to (found once per request): a connector need not look them up again.
    resolved: bool = False

    def ids_with(self, connector: "Connector") -> set[str]:
        """The ids to search by: the known ones, plus the connector's own mapping of
        the address unless the identity is resolved already."""
        known = set(self.customer_ids)
        return known if self.resolved else known | connector.customer_ids(self.email)


@dataclass
class Finding:
    """What one source holds about the person: rows per table, and the query text."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


@dataclass
class Erasure:
    """What an erasure did in one source: rows deleted or masked, rows kept under a
    legal hold (with the Art. 17(3) exemption), the statements run, and what the
    verification query found afterwards (0 when nothing erasable is left)."""

    rows_changed: int = 0
    rows_held: int = 0
    holds: dict[str, str] = field(default_factory=dict)  # table -> exemption
    queries: list[str] = field(default_factory=list)
    remaining: int = 0


MASKS = ("null", "hash")


def keyed_hash(value: object) -> str:
    """A keyed hash that replaces a value: stable (joins still work), not reversible
    without the portal's key."""
    return "erased:" + salted_hmac("datasubjects.erasure", str(value)).hexdigest()[:32]


class Connector(Protocol):
    def customer_ids(self, email: str) -> set[str]: ...
    def find(self, identity: Identity) -> Finding: ...
    def check(self) -> str: ...


def _identifier(value: object, what: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ConnectorError(f"{what} {value!r} is not a plain identifier")
    return value


def _tables(config: dict[str, Any]) -> dict[str, str]:
    tables = config.get("tables") or {}
    if not isinstance(tables, dict) or not tables:
        raise ConnectorError('config needs "tables": {table: key column}')
    return {_identifier(t, "table"): _identifier(c, "column") for t, c in tables.items()}


def _json_rows(frame: Any) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


# --- the Parquet lake --------------------------------------------------------------------


class LakeConnector:
    """Every snapshot of the pipelines' lake (the newest and the older ones past model
    versions were trained on). Config: `root` (default
    PIPELINES_LAKE_ROOT), `tables` {table: customer id column}, `person_table` and
    `email_column` (where an address maps to customer ids)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.root = config.get("root") or settings.PIPELINES_LAKE_ROOT
        self.tables = _tables(config)
        self.person_table = _identifier(config.get("person_table", "customers"), "table")
        self.email_column = _identifier(config.get("email_column", "email"), "column")
        self.id_column = self.tables.get(self.person_table, "customer_id")

    def _snapshot(self) -> Any:
        from pipelines.lake import SnapshotNotFound, open_snapshot  # -- slow

        try:
            return open_snapshot(root=self.root)
        except SnapshotNotFound as error:
            raise ConnectorError(str(error)) from error

    def _read(self, snapshot: Any, name: str, column: str, values: list[str]) -> Any:
        """The rows of table `name` whose `column` is one of `values`, as a DataFrame,
        read a batch at a time (a table of any size, the memory of a batch)."""
        from pipelines.lake import rows_where  # -- slow

        if name not in snapshot.tables:
            raise ConnectorError(f"snapshot {snapshot.id} has no table {name}")
        path = Path(snapshot.path) / snapshot.tables[name]["file"]
        return rows_where(path, column=column, values=values).to_pandas()

    def _snapshots(self) -> list[Any]:
        """Every snapshot of the lake, newest first: past model versions were trained
        on the older ones, and the lake still holds them."""
        from pipelines.lake import list_snapshots  # -- slow

        snapshots = list_snapshots(root=self.root)
        if not snapshots:
            self._snapshot()  # raises the lake's own "no snapshot yet" error
        return list(reversed(snapshots))

    def customer_ids(self, email: str) -> set[str]:
        """The customer ids `email` maps to in any snapshot (an address gone from the
        newest one may still name rows in an older one)."""
        ids: set[str] = set()
        read: set[str] = set()
        for snapshot in self._snapshots():
            info = snapshot.tables.get(self.person_table)
            if info is None or info["sha256"] in read:
                continue
            read.add(info["sha256"])
            frame = self._read(snapshot, self.person_table, self.email_column, [email])
            ids |= {str(value) for value in frame[self.id_column]}
        return ids

    def find(self, identity: Identity) -> Finding:
        """The person's rows in every snapshot, each distinct row once (a row in several
        snapshots is given once), newest snapshot first. The queries say, per table and
        snapshot, how many rows that snapshot held and how many no newer one had; a
        table whose content an already read snapshot had (same content hash) is not
        read again. Each table is read a batch at a time (`rows_where`)."""
        finding = Finding()
        ids = sorted(identity.ids_with(self))
        snapshots = self._snapshots()
        for name, column in self.tables.items():
            if not ids:
                finding.tables[name] = []
                continue
            rows: list[dict[str, Any]] = []
            seen: set[str] = set()
            read: dict[str, str] = {}  # content hash -> the snapshot it was read from
            where = f"{name}.parquet WHERE {column} IN ({', '.join(ids)})"
            for snapshot in snapshots:
                info = snapshot.tables.get(name)
                if info is None:
                    continue
                if info["sha256"] in read:
                    finding.queries.append(
                        f"snapshot {snapshot.id}: {name} same content as in snapshot "
                        f"{read[info['sha256']]}: not read again"
                    )
                    continue
                read[info["sha256"]] = snapshot.id
                found = _json_rows(self._read(snapshot, name, column, ids))
                new = 0
                for row in found:
                    key = json.dumps(row, sort_keys=True)
                    if key not in seen:
                        seen.add(key)
                        rows.append(row)
                        new += 1
                finding.queries.append(
                    f"snapshot {snapshot.id}: {where}: {len(found)} row(s), "
                    f"{new} not in a newer snapshot"
                )
            finding.tables[name] = rows
        return finding

    def snapshots_containing(self, identity: Identity) -> list[tuple[str, int]]:
        """Every snapshot of the lake (not only the newest) that holds the person, with
        their row count there: the training data of past model versions."""
        import pyarrow.parquet as pq  # -- slow

        from pipelines.lake import list_snapshots  # -- slow

        found = []
        for snapshot in list_snapshots(root=self.root):
            rows = 0
            person = snapshot.tables.get(self.person_table)
            if person is None:
                continue
            people = pq.read_table(
                Path(snapshot.path) / person["file"],
                filters=[(self.email_column, "=", identity.email)],
                columns=[self.id_column],
            )
            ids = sorted(
                set(identity.customer_ids) | {str(v) for v in people.column(0).to_pylist()}
            )
            if not ids:
                continue
            for name, column in self.tables.items():
                if name in snapshot.tables:
                    rows += pq.read_table(
                        Path(snapshot.path) / snapshot.tables[name]["file"],
                        filters=[(column, "in", ids)],
                        columns=[column],
                    ).num_rows
            if rows:
                found.append((snapshot.id, rows))
        return found

    def check(self) -> str:
        snapshot = self._snapshot()
        missing = [name for name in self.tables if name not in snapshot.tables]
        if missing:
            raise ConnectorError(f"snapshot {snapshot.id} has no table {', '.join(missing)}")
        counts = ", ".join(f"{n}: {snapshot.tables[n]['rows']} rows" for n in self.tables)
        return f"snapshot {snapshot.id} ({counts})"


# --- SQL databases -----------------------------------------------------------------------


class SqlConnector:
    """A database over SQL. Config: `url` (`sqlite:///path` or `postgres://...`),
    `tables` {table: key column}, `person_table`, `email_column`, `customer_id_column`.
    A table keyed by `email_column` is searched by address, any other by customer id."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url = str(config.get("url") or "")
        if not self.url:
            raise ConnectorError('config needs "url"')
        self.tables = _tables(config)
        self.person_table = _identifier(config.get("person_table", ""), "person_table")
        self.email_column = _identifier(config.get("email_column", "email"), "column")
        self.id_column = _identifier(config.get("customer_id_column", "customer_id"), "column")

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite:")

    def connect(self) -> Any:
        try:
            if self.is_sqlite:
                path = self.url.removeprefix("sqlite:///").removeprefix("sqlite://")
                if not Path(path).exists():
                    raise ConnectorError("the SQLite file does not exist")
                return sqlite3.connect(path)
            import psycopg  # noqa: PLC0415 -- slow

            scheme = urlsplit(self.url).scheme
            url = self.url.replace(f"{scheme}://", "postgresql://", 1)
            return psycopg.connect(url, connect_timeout=10)
        except (sqlite3.Error, OSError) as error:
            raise ConnectorError(f"cannot connect: {error}") from error
        except Exception as error:  # psycopg's errors, without importing it at the top
            if error.__class__.__module__.startswith("psycopg"):
                raise ConnectorError(f"cannot connect: {error}") from error
            raise

    def _placeholders(self, count: int) -> str:
        mark = "?" if self.is_sqlite else "%s"
        return ", ".join([mark] * count)

    def select(self, connection: Any, table: str, column: str, values: Iterable[str]):
        values = list(values)
        sql = f'SELECT * FROM "{table}" WHERE "{column}" IN ({self._placeholders(len(values))})'  # noqa: S608  # nosec B608  # identifiers checked, values are parameters
        cursor = connection.cursor()
        cursor.execute(sql, values)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return sql, rows

    def _values_for(self, column: str, identity: Identity, ids: Iterable[str]) -> list[str]:
        return [identity.email] if column == self.email_column else sorted(ids)

    def customer_ids(self, email: str) -> set[str]:
        with self.connect() as connection:
            _, rows = self.select(connection, self.person_table, self.email_column, [email])
        return {str(row[self.id_column]) for row in rows if row.get(self.id_column)}

    def find(self, identity: Identity) -> Finding:
        finding = Finding()
        ids = identity.ids_with(self)
        connection = self.connect()
        try:
            for table, column in self.tables.items():
                values = self._values_for(column, identity, ids)
                if not values:
                    finding.tables[table] = []
                    continue
                sql, rows = self.select(connection, table, column, values)
                finding.tables[table] = json.loads(json.dumps(rows, default=str))
                finding.queries.append(f"{sql} -- {len(values)} value(s)")
        except (sqlite3.Error, OSError) as error:
            raise ConnectorError(str(error)) from error
        finally:
            connection.close()
        return finding

    def erase(self, identity: Identity, rules: dict[str, Any]) -> Erasure:
        """Erase the person table by table, in one transaction: `delete` the rows, or
        `mask` named columns (`null` or a keyed `hash`); a table under `hold` keeps its
        rows and says which Art. 17(3) exemption applies. Running it again changes
        nothing: erased rows no longer match."""
        erasure = Erasure()
        ids = identity.ids_with(self)
        connection = self.connect()
        try:
            # Tables keyed by customer id first: the person table (keyed by e-mail
            # after masking) is what maps the address to those ids.
            for table, column in sorted(
                self.tables.items(), key=lambda tc: tc[0] == self.person_table
            ):
                values = self._values_for(column, identity, ids)
                rule = rules.get(table) or {"strategy": "delete"}
                if not values:
                    continue
                _, rows = self.select(connection, table, column, values)
                if rule.get("hold"):
                    erasure.rows_held += len(rows)
                    erasure.holds[table] = str(rule["hold"])
                    continue
                marks = self._placeholders(len(values))
                cursor = connection.cursor()
                if rule.get("strategy", "delete") == "delete":
                    sql = f'DELETE FROM "{table}" WHERE "{column}" IN ({marks})'  # noqa: S608  # nosec B608  # identifiers checked, values are parameters
                    cursor.execute(sql, values)
                    erasure.rows_changed += max(cursor.rowcount, 0)
                    erasure.queries.append(sql)
                    continue
                fields = rule.get("fields") or {}
                for name, mask in fields.items():
                    _identifier(name, "column")
                    if mask not in MASKS:
                        raise ConnectorError(f"mask {mask!r}: one of {', '.join(MASKS)}")
                nulls = [name for name, mask in fields.items() if mask == "null"]
                hashes = [name for name, mask in fields.items() if mask == "hash"]
                mark = "?" if self.is_sqlite else "%s"
                for row in rows:
                    assignments = [f'"{n}" = NULL' for n in nulls] + [
                        f'"{h}" = {mark}' for h in hashes
                    ]
                    params = [keyed_hash(row[h]) if row[h] is not None else None for h in hashes]
                    where = " AND ".join(f'"{k}" = {mark}' for k in row if row[k] is not None)
                    sql = f'UPDATE "{table}" SET {", ".join(assignments)} WHERE {where}'  # noqa: S608  # nosec B608  # identifiers checked, values are parameters
                    cursor.execute(sql, params + [v for v in row.values() if v is not None])
                    erasure.rows_changed += max(cursor.rowcount, 0)
                if rows:
                    masks = ", ".join(f"{n}: {fields[n]}" for n in fields)
                    erasure.queries.append(
                        f"mask {table} ({masks}) where {column} matches: {len(rows)} row(s)"
                    )
            connection.commit()
            # The verification query: what is still there, outside the held tables.
            for table, column in self.tables.items():
                if table in erasure.holds:
                    continue
                values = self._values_for(column, identity, ids)
                if values:
                    sql, rows = self.select(connection, table, column, values)
                    erasure.remaining += len(rows)
                    erasure.queries.append(f"verify: {sql} -> {len(rows)} row(s)")
        except (sqlite3.Error, OSError) as error:
            connection.rollback()
            raise ConnectorError(str(error)) from error
        finally:
            connection.close()
        return erasure

    def check(self) -> str:
        connection = self.connect()
        try:
            counts = []
            for table in self.tables:
                cursor = connection.cursor()
                cursor.execute(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608  # nosec B608  # identifier checked
                counts.append(f"{table}: {cursor.fetchone()[0]} rows")
        except sqlite3.Error as error:
            raise ConnectorError(str(error)) from error
        finally:
            connection.close()
        return ", ".join(counts)


# --- the portal's own records ------------------------------------------------------------


class PortalConnector:
    """The portal's records about the person: their requests and the ledger's events
    about those requests (which carry pseudonymous ids only)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def customer_ids(self, email: str) -> set[str]:
        return set()

    def find(self, identity: Identity) -> Finding:
        tables = portal_records_for(subject_ref=identity.subject_ref)
        return Finding(
            tables=tables,
            queries=[
                "data subject requests WHERE subject_ref = <keyed hash of the address>",
                "audit events WHERE object is one of those requests",
                "consent records WHERE subject_ref = <keyed hash of the address>",
            ],
        )

    def erase(self, identity: Identity, rules: dict[str, Any]) -> Erasure:
        """Redact the ledger's payloads about the person's requests (the events and
        the chain stay: verification reads them as redacted)."""
        erasure = Erasure()
        for request in portal_records_for(subject_ref=identity.subject_ref)[
            "data_subject_requests"
        ]:
            result = audit_payloads_redact(
                object_type=REQUEST_AUDIT_TYPE,
                object_id=request["request"],
                reason="GDPR Art. 17 erasure",
                actor=Actor.system("datasubjects.worker"),
            )
            erasure.rows_changed += result.redacted
        erasure.queries.append("audit payloads of the person's requests: redacted")
        return erasure

    def check(self) -> str:
        return "the portal's own database"


# --- BigQuery ----------------------------------------------------------------------------

BQ_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,29}\Z")
BQ_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}\.[A-Za-z_][A-Za-z0-9_-]{0,1023}\Z")


class BigQueryConnector:
    """Tables in BigQuery, through google-cloud-bigquery. Config: `project`, `tables`
    {"dataset.table": key column}, `person_table` ("dataset.table") with `email_column`
    and `customer_id_column` (where an address maps to customer ids), and optionally
    `location`. A table keyed by `email_column` is searched by address, any other by
    customer id. The endpoint is BIGQUERY_API_ENDPOINT (Google's when empty).

    Every value travels as a named query parameter (`@email`, `UNNEST(@ids)`); table and
    column names, which cannot be parameters, are checked against strict patterns first.
    Erasure is a DML DELETE per table (or a legal hold keeping the table's rows); BigQuery
    refuses DML on rows still in a streaming buffer, which comes back as a
    ConnectorError and the task retries later.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        project = config.get("project")
        if not isinstance(project, str) or not BQ_PROJECT.match(project):
            raise ConnectorError(f'config needs "project" (a BigQuery project id), not {project!r}')
        self.project = project
        tables = config.get("tables") or {}
        if not isinstance(tables, dict) or not tables:
            raise ConnectorError('config needs "tables": {"dataset.table": key column}')
        self.tables = {}
        for table, column in tables.items():
            if not isinstance(table, str) or not BQ_TABLE.match(table):
                raise ConnectorError(f"table {table!r} is not dataset.table")
            self.tables[table] = _identifier(column, "column")
        self.person_table = str(config.get("person_table") or "")
        if self.person_table and not BQ_TABLE.match(self.person_table):
            raise ConnectorError(f"person_table {self.person_table!r} is not dataset.table")
        self.email_column = _identifier(config.get("email_column", "email"), "column")
        self.id_column = _identifier(config.get("customer_id_column", "customer_id"), "column")
        self.location = config.get("location") or None

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415 -- slow
        from google.cloud import bigquery  # noqa: PLC0415 -- slow

        endpoint = getattr(settings, "BIGQUERY_API_ENDPOINT", "")
        if not endpoint:
            return bigquery.Client(project=self.project, location=self.location)
        return bigquery.Client(
            project=self.project,
            location=self.location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )

    def _full(self, table: str) -> str:
        return f"`{self.project}.{table}`"

    def _where(self, column: str, values: list[str]) -> tuple[str, Any]:
        from google.cloud import bigquery  # noqa: PLC0415 -- slow

        if column == self.email_column:
            return f"{column} = @email", bigquery.ScalarQueryParameter("email", "STRING", values[0])
        return f"{column} IN UNNEST(@ids)", bigquery.ArrayQueryParameter("ids", "STRING", values)

    def _run(self, client: Any, sql: str, params: list[Any]) -> Any:
        from google.api_core import exceptions  # noqa: PLC0415 -- slow
        from google.cloud import bigquery  # noqa: PLC0415 -- slow

        try:
            return client.query_and_wait(
                sql, job_config=bigquery.QueryJobConfig(query_parameters=params)
            )
        except exceptions.GoogleAPIError as error:
            raise ConnectorError(f"BigQuery: {error}") from error
        except OSError as error:
            raise ConnectorError(f"BigQuery unreachable: {error}") from error

    def _select(self, client: Any, table: str, column: str, values: list[str]):
        where, param = self._where(column, values)
        sql = f"SELECT * FROM {self._full(table)} WHERE {where}"  # noqa: S608  # nosec B608  # identifiers checked, values are parameters
        rows = [dict(row.items()) for row in self._run(client, sql, [param])]
        return sql, json.loads(json.dumps(rows, default=str))

    def _values_for(self, column: str, identity: Identity, ids: Iterable[str]) -> list[str]:
        return [identity.email] if column == self.email_column else sorted(ids)

    def customer_ids(self, email: str) -> set[str]:
        if not self.person_table:
            return set()
        _, rows = self._select(self.client(), self.person_table, self.email_column, [email])
        return {str(row[self.id_column]) for row in rows if row.get(self.id_column)}

    def find(self, identity: Identity) -> Finding:
        finding = Finding()
        client = self.client()
        ids = set(identity.customer_ids) | self.customer_ids(identity.email)
        for table, column in self.tables.items():
            values = self._values_for(column, identity, ids)
            if not values:
                finding.tables[table] = []
                continue
            sql, rows = self._select(client, table, column, values)
            finding.tables[table] = rows
            finding.queries.append(f"{sql} -- {len(values)} value(s) as parameters")
        return finding

    def erase(self, identity: Identity, rules: dict[str, Any]) -> Erasure:
        """DELETE the person's rows table by table (tables keyed by customer id first,
        the person table last: it maps the address to those ids); a table under `hold`
        keeps its rows with the Art. 17(3) exemption named. Then the verification query
        per table. Running it again deletes nothing more."""
        erasure = Erasure()
        client = self.client()
        ids = set(identity.customer_ids) | self.customer_ids(identity.email)
        ordered = sorted(self.tables.items(), key=lambda tc: tc[0] == self.person_table)
        for table, column in ordered:
            values = self._values_for(column, identity, ids)
            rule = rules.get(table) or {"strategy": "delete"}
            if not values:
                continue
            if rule.get("hold"):
                _, rows = self._select(client, table, column, values)
                erasure.rows_held += len(rows)
                erasure.holds[table] = str(rule["hold"])
                continue
            if rule.get("strategy", "delete") != "delete":
                raise ConnectorError(f"{table}: BigQuery sources erase by delete (or hold)")
            where, param = self._where(column, values)
            sql = f"DELETE FROM {self._full(table)} WHERE {where}"  # noqa: S608  # nosec B608  # identifiers checked, values are parameters
            result = self._run(client, sql, [param])
            erasure.rows_changed += int(result.num_dml_affected_rows or 0)
            erasure.queries.append(sql)
        for table, column in self.tables.items():
            if table in erasure.holds:
                continue
            values = self._values_for(column, identity, ids)
            if values:
                sql, rows = self._select(client, table, column, values)
                erasure.remaining += len(rows)
                erasure.queries.append(f"verify: {sql} -> {len(rows)} row(s)")
        return erasure

    def check(self) -> str:
        client = self.client()
        counts = []
        for table in self.tables:
            sql = f"SELECT COUNT(*) AS n FROM {self._full(table)}"  # noqa: S608  # nosec B608  # identifier checked
            (row,) = list(self._run(client, sql, []))
            counts.append(f"{table}: {row['n']} rows")
        return ", ".join(counts)


# --- the model server's prediction log ---------------------------------------------------


LOG_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")


class PredictionLogConnector:
    """The model server's prediction log (`serving.prediction_log`): JSON lines in
    `<root>/<model slug>/<YYYY-MM-DD>.jsonl`, a person's lines found by `customer_id`.
    Config: `root` (default MONITORING_PREDICTION_LOG_DIR), `models` (slugs; default
    every model folder). An erasure rewrites each file that holds the person without
    their lines, staged beside it and renamed into place; running it again finds
    nothing to remove."""

    TABLE = "predictions"

    def __init__(self, config: dict[str, Any]) -> None:
        self.root = Path(config.get("root") or settings.MONITORING_PREDICTION_LOG_DIR)
        models = config.get("models") or []
        if not isinstance(models, list):
            raise ConnectorError('"models" is a list of model slugs')
        for model in models:
            if not isinstance(model, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", model):
                raise ConnectorError(f"model {model!r} is not a model slug")
        self.models = models

    def files(self) -> list[Path]:
        """Every day file of the log (of the configured models), oldest first."""
        if not self.root.is_dir():
            return []
        folders = (
            [self.root / m for m in self.models]
            if self.models
            else sorted(p for p in self.root.iterdir() if p.is_dir())
        )
        return [
            path
            for folder in folders
            if folder.is_dir()
            for path in sorted(folder.iterdir())
            if LOG_FILE.match(path.name)
        ]

    @staticmethod
    def _needles(ids: Iterable[str]) -> "re.Pattern[bytes]":
        # A cheap byte search first, one regular expression for every id (one call per
        # line, not one per id); only lines holding an id's JSON string are parsed.
        return re.compile(b"|".join(re.escape(json.dumps(str(i)).encode()) for i in sorted(ids)))

    @staticmethod
    def _line_of(line: bytes, ids: set[str], needles: "re.Pattern[bytes]") -> dict[str, Any] | None:
        if needles.search(line) is None:
            return None
        try:
            parsed = json.loads(line)
        except ValueError:
            return None  # a line being written, or damaged: not the person's by this key
        if isinstance(parsed, dict) and str(parsed.get("customer_id")) in ids:
            return parsed
        return None

    def customer_ids(self, email: str) -> set[str]:
        return set()

    def find(self, identity: Identity) -> Finding:
        ids = set(identity.customer_ids)
        finding = Finding(tables={self.TABLE: []})
        if not ids:
            return finding
        needles = self._needles(ids)
        files = self.files()
        for path in files:
            with path.open("rb") as log:
                for line in log:
                    found = self._line_of(line, ids, needles)
                    if found is not None:
                        finding.tables[self.TABLE].append(found)
        finding.queries.append(
            f"{len(files)} day file(s) of the prediction log: lines WHERE customer_id IN "
            f"({len(ids)} id(s))"
        )
        return finding

    def _rewrite(self, path: Path, ids: set[str], needles: "re.Pattern[bytes]") -> int:
        """Replace `path` with a copy without the person's lines; how many went."""
        staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        removed = 0
        with path.open("rb") as source:
            with staging.open("wb") as out:
                for line in source:
                    if self._line_of(line, ids, needles) is None:
                        out.write(line)
                    else:
                        removed += 1
            if not removed:
                staging.unlink()
                return 0
            os.replace(staging, path)
            # The server appends whole lines to today's file in batches: a batch that
            # opened the old file before the rename lands in it, after what we read.
            # Carry those lines over (without the person's) to the new file.
            late = [line for line in source if self._line_of(line, ids, needles) is None]
        if late:
            with path.open("ab") as out:
                out.writelines(late)
        return removed

    def erase(self, identity: Identity, rules: dict[str, Any]) -> Erasure:
        """Delete the person's lines (the only strategy: a line is about one request);
        a `hold` on the predictions table keeps them and names the exemption."""
        erasure = Erasure()
        ids = set(identity.customer_ids)
        if not ids:
            return erasure
        needles = self._needles(ids)
        rule = rules.get(self.TABLE) or {}
        if rule.get("hold"):
            erasure.rows_held = self.find(identity).rows
            erasure.holds[self.TABLE] = str(rule["hold"])
            return erasure
        files = self.files()
        try:
            for path in files:
                removed = self._rewrite(path, ids, needles)
                if removed:
                    erasure.rows_changed += removed
                    erasure.queries.append(
                        f"rewrote {path.parent.name}/{path.name} without {removed} line(s)"
                    )
        except OSError as error:
            raise ConnectorError(f"cannot rewrite the prediction log: {error}") from error
        erasure.remaining = self.find(identity).rows
        erasure.queries.append(
            f"verify: {len(files)} day file(s), lines WHERE customer_id IN ({len(ids)} id(s)) "
            f"-> {erasure.remaining} line(s)"
        )
        return erasure

    def check(self) -> str:
        if not self.root.is_dir():
            raise ConnectorError("no prediction log folder yet (the model server makes it)")
        files = self.files()
        models = sorted({path.parent.name for path in files})
        return f"{len(files)} day file(s) of {len(models)} model(s): {', '.join(models) or '-'}"


CONNECTORS = {
    SourceKind.LAKE: LakeConnector,
    SourceKind.SQL: SqlConnector,
    SourceKind.PORTAL: PortalConnector,
    SourceKind.BIGQUERY: BigQueryConnector,
    SourceKind.PREDICTION_LOG: PredictionLogConnector,
}


def connector_for(*, kind: str, config: dict[str, Any]) -> Connector:
    """The connector of a source's kind; ConnectorError for a kind without one."""
    try:
        return CONNECTORS[kind](config)
    except KeyError as error:
        raise ConnectorError(f"no connector for {kind} sources: a person does the work") from error

"""A local stand-in for BigQuery's REST API (v2), the one google-cloud-bigquery speaks.

It answers the paths the client library really calls (`Client.get_table`,
`Client.list_rows`, `Client.query_and_wait`), in BigQuery's JSON format (table
resources with their schema, rows as `{"f": [{"v": ...}]}` with every value a string,
int64 counts as strings, errors as `{"error": {"code", "message", "errors", "status"}}`),
keeps its tables in memory and records every request.

    GET  /bigquery/v2/projects/{p}/datasets/{d}/tables/{t}         tables.get
    GET  /bigquery/v2/projects/{p}/datasets/{d}/tables/{t}/data    tabledata.list (paged)
    POST /bigquery/v2/projects/{p}/queries                          jobs.query

A table snapshot is a table of type SNAPSHOT with a `snapshotDefinition` (the base
table and the snapshot time), as BigQuery describes one.

jobs.query runs the small dialect the portal's connectors write, always with named
parameters (the fake refuses a value written into the query text):

    SELECT * FROM `p.d.t` WHERE col = @name | col IN UNNEST(@names)
    DELETE FROM `p.d.t` WHERE col = @name | col IN UNNEST(@names)
    SELECT COUNT(*) AS n FROM `p.d.t`
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from tests.fakes.json_http import Failure, JsonHttpFake, route_find

_TABLE = r"projects/(?P<project>[^/]+)/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(rf"^/bigquery/v2/{_TABLE}$"), "get_table"),
    ("GET", re.compile(rf"^/bigquery/v2/{_TABLE}/data$"), "list_rows"),
    ("POST", re.compile(r"^/bigquery/v2/projects/(?P<project>[^/]+)/queries$"), "query"),
]
_WHERE = r"WHERE\s+`?(?P<column>\w+)`?\s*(?:=\s*@(?P<one>\w+)|IN\s+UNNEST\(\s*@(?P<many>\w+)\s*\))"
_SELECT = re.compile(rf"^\s*SELECT\s+\*\s+FROM\s+`(?P<table>[\w.-]+)`\s+{_WHERE}\s*;?\s*$", re.I)
_DELETE = re.compile(rf"^\s*DELETE\s+FROM\s+`(?P<table>[\w.-]+)`\s+{_WHERE}\s*;?\s*$", re.I)
_COUNT = re.compile(
    r"^\s*SELECT\s+COUNT\(\*\)\s+AS\s+n\s+FROM\s+`(?P<table>[\w.-]+)`\s*;?\s*$", re.I
)
STATUS_NAMES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 500: "INTERNAL", 503: "UNAVAILABLE"}


class BigQueryApiError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or {404: "notFound", 400: "invalidQuery"}.get(status, "backendError")


@dataclass
class FakeTable:
    """One table: its schema (`[{"name", "type", "mode"}]`, BigQuery types) and rows
    (dicts of Python values); a snapshot has `base` ("p.d.t") and `snapshot_time`."""

    project: str
    dataset: str
    table: str
    schema: list[dict[str, str]]
    rows: list[dict[str, Any]]
    base: str = ""
    snapshot_time: datetime | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def full_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    def resource(self) -> dict[str, Any]:
        millis = str(int(self.created.timestamp() * 1000))
        resource: dict[str, Any] = {
            "kind": "bigquery#table",
            "id": f"{self.project}:{self.dataset}.{self.table}",
            "tableReference": {
                "projectId": self.project,
                "datasetId": self.dataset,
                "tableId": self.table,
            },
            "schema": {"fields": [{"mode": "NULLABLE", **f} for f in self.schema]},
            "numRows": str(len(self.rows)),
            "creationTime": millis,
            "lastModifiedTime": millis,
            "type": "SNAPSHOT" if self.base else "TABLE",
            "location": "EU",
            "etag": f"etag-{self.table}-{len(self.rows)}",
        }
        if self.base:
            project, dataset, table = self.base.split(".")
            resource["snapshotDefinition"] = {
                "baseTableReference": {
                    "projectId": project,
                    "datasetId": dataset,
                    "tableId": table,
                },
                # RFC 3339 with microseconds, as BigQuery writes it (and the client
                # library's parser insists on).
                "snapshotTime": self.snapshot_time.astimezone(UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                ),
            }
        return resource


@dataclass
class FakeBigQueryServer(JsonHttpFake):
    """BigQuery's REST API in memory, on 127.0.0.1; `page_size` is the most rows one
    tabledata.list page holds, so the client's paging is exercised."""

    page_size: int = 1000
    tables: dict[str, FakeTable] = field(default_factory=dict)

    # --- what tests arrange and read ---------------------------------------------------

    def add_table(
        self, full_id: str, schema: list[dict[str, str]], rows: list[dict[str, Any]]
    ) -> FakeTable:
        project, dataset, table = full_id.split(".")
        with self._lock:
            self.tables[full_id] = FakeTable(project, dataset, table, schema, list(rows))
            return self.tables[full_id]

    def add_snapshot(self, full_id: str, *, base: str, snapshot_time: datetime) -> FakeTable:
        """A snapshot of `base` as it is now (a copy of its rows)."""
        source = self.tables[base]
        project, dataset, table = full_id.split(".")
        with self._lock:
            self.tables[full_id] = FakeTable(
                project,
                dataset,
                table,
                list(source.schema),
                [dict(r) for r in source.rows],
                base=base,
                snapshot_time=snapshot_time,
            )
            return self.tables[full_id]

    def fail(self, method: str, path_pattern: str, *, status: int = 503, times: int = 1) -> None:
        with self._lock:
            self._failures.append(
                Failure(method.upper(), re.compile(path_pattern), status, "injected", times)
            )

    # --- the API ---------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any]:
        request = self._request_keep(method, raw_path, headers, raw_body)
        path, query, body = request.path, request.query, request.body
        with self._lock:
            try:
                injected = self._injected_failure(method, path)
                if injected is not None:
                    raise BigQueryApiError(injected.status, injected.message)
                action, params = route_find(_ROUTES, method, path)
                if not action:
                    raise BigQueryApiError(404, f"Not found: URL {path}")
                return 200, getattr(self, f"_{action}")(query=query, body=body, **params)
            except BigQueryApiError as error:
                return error.status, {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "errors": [
                            {"message": error.message, "domain": "global", "reason": error.reason}
                        ],
                        "status": STATUS_NAMES.get(error.status, "UNKNOWN"),
                    }
                }

    def _table(self, full_id: str) -> FakeTable:
        table = self.tables.get(full_id)
        if table is None:
            raise BigQueryApiError(404, f"Not found: Table {full_id}")
        return table

    def _get_table(self, *, project: str, dataset: str, table: str, **_: Any) -> dict[str, Any]:
        return self._table(f"{project}.{dataset}.{table}").resource()

    def _list_rows(
        self, *, project: str, dataset: str, table: str, query: dict[str, list[str]], **_: Any
    ) -> dict[str, Any]:
        found = self._table(f"{project}.{dataset}.{table}")
        start = int(query.get("pageToken", ["0"])[0] or 0)
        size = min(int(query.get("maxResults", [self.page_size])[0]), self.page_size)
        int64_times = query.get("formatOptions.useInt64Timestamp", [""])[0].lower() == "true"
        page = found.rows[start : start + size]
        answer: dict[str, Any] = {
            "kind": "bigquery#tableDataList",
            "etag": "etag",
            "totalRows": str(len(found.rows)),
            "rows": [_encode_row(row, found.schema, int64_times) for row in page],
        }
        if start + size < len(found.rows):
            answer["pageToken"] = str(start + size)
        return answer

    def _query(self, *, project: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        if body.get("useLegacySql", True) is not False:
            raise BigQueryApiError(400, "the fake runs GoogleSQL only (useLegacySql: false)")
        text = body.get("query", "")
        params = _parameters(body.get("queryParameters") or [])
        job = {"projectId": project, "jobId": f"job_{uuid.uuid4().hex}", "location": "EU"}
        answer: dict[str, Any] = {
            "kind": "bigquery#queryResponse",
            "jobReference": job,
            "jobComplete": True,
            "cacheHit": False,
            "totalBytesProcessed": "0",
        }
        count = _COUNT.match(text)
        if count:
            found = self._table(count.group("table"))
            answer["schema"] = {"fields": [{"name": "n", "type": "INTEGER", "mode": "NULLABLE"}]}
            answer["rows"] = [{"f": [{"v": str(len(found.rows))}]}]
            answer["totalRows"] = "1"
            return answer
        select, delete = _SELECT.match(text), _DELETE.match(text)
        match = select or delete
        if match is None:
            raise BigQueryApiError(400, f"Syntax error: the fake does not run {text!r}")
        found = self._table(match.group("table"))
        if found.base and delete:
            raise BigQueryApiError(400, f"Table {found.full_id} is a snapshot: read only")
        column = match.group("column")
        if column not in {f["name"] for f in found.schema}:
            raise BigQueryApiError(400, f"Unrecognized name: {column}")
        name = match.group("one") or match.group("many")
        if name not in params:
            raise BigQueryApiError(400, f"Query parameter '{name}' not found")
        wanted = params[name] if match.group("many") else [params[name]]
        if not isinstance(wanted, list):
            raise BigQueryApiError(400, f"UNNEST(@{name}) needs an ARRAY parameter")
        wanted_text = {str(v) for v in wanted}
        hits = [row for row in found.rows if str(row.get(column)) in wanted_text]
        if delete:
            found.rows = [row for row in found.rows if str(row.get(column)) not in wanted_text]
            answer["numDmlAffectedRows"] = str(len(hits))
            answer["dmlStats"] = {"deletedRowCount": str(len(hits))}
            answer["totalRows"] = "0"
            return answer
        answer["schema"] = {"fields": [{"mode": "NULLABLE", **f} for f in found.schema]}
        answer["rows"] = [_encode_row(row, found.schema, True) for row in hits]
        answer["totalRows"] = str(len(hits))
        return answer


def _parameters(raw: list[dict[str, Any]]) -> dict[str, Any]:
    """Named query parameters as Python values (scalars, or lists for ARRAY)."""
    values: dict[str, Any] = {}
    for param in raw:
        kind = param.get("parameterType", {})
        value = param.get("parameterValue", {})
        if kind.get("type") == "ARRAY":
            values[param["name"]] = [v.get("value") for v in value.get("arrayValues", [])]
        else:
            values[param["name"]] = value.get("value")
    return values


def _encode_value(value: Any, kind: str, int64_times: bool) -> Any:
    if value is None:
        return None
    if kind in ("TIMESTAMP",):
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        micros = int(moment.timestamp() * 1_000_000)
        return str(micros) if int64_times else f"{micros / 1_000_000:.6f}"
    if kind == "DATETIME":
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if kind == "DATE":
        return value.isoformat() if isinstance(value, date) else str(value)
    if kind in ("BOOLEAN", "BOOL"):
        return "true" if value else "false"
    if kind == "BYTES":
        return base64.b64encode(value).decode()
    return str(value)


def _encode_row(row: dict[str, Any], schema: list[dict[str, str]], int64_times: bool) -> dict:
    return {"f": [{"v": _encode_value(row.get(f["name"]), f["type"], int64_times)} for f in schema]}

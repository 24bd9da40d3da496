"""Import the client's own files into the lake as a new snapshot.

    result = import_files(root=lake, sources=[ImportSource("transactions", "tx.csv")],
                          mapping={"transactions": {"InvoiceDate": "ts"}})
    result.snapshot.id         # sha256:<hex>, the data version training runs record
    result.report.tables       # rows read, accepted, rejected by reason (count + sample)

Each file is one lake table, CSV or Parquet. Its columns are renamed by the mapping
(client name -> lake name; columns already named as in the lake need no entry),
converted to the lake's types, and every row is held to the validate step's rules
(types, missing values, ranges, allowed values, no future times, amount = quantity x
unit price, unique keys, references to the tables imported with it). A row that breaks
a rule is rejected under its first broken rule and counted, never dropped silently;
past `max_rejected` (a share of a table's rows) nothing is stored. The report names a
rejected row by its line in a CSV file (the header is line 1, as an editor counts;
blank lines, which the reader skips, are not counted) and by its row in a Parquet file
(the first row is row 1).

An export with a unit price but no line total (e.g. the UCI Online Retail shape:
Quantity, UnitPrice) gets `amount` computed as quantity x unit_price per row, after
both are converted and checked; the report records that it was computed
(`TableReport.computed`). When the mapping names both an amount and a unit price, the
file's amount is kept and held to quantity x unit_price like any other row.

Files are streamed batch by batch (pyarrow's CSV streaming reader, Parquet row groups)
into Parquet files, and hashed as they are written (the hashed bytes are spooled to
disk and hashed in the lake's order at the end), so memory stays flat in the file size:
what grows with the rows is one int64 per key of the table being imported (to find
duplicates).
"""

import csv
import hashlib
import io
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from pipelines.cloud_storage import is_gs_uri
from pipelines.lake import (
    MANIFEST,
    Snapshot,
    StreamedTableHash,
    _folder_name,
    _snapshot_from_folder,
    canonical_table,
    hash_column,
    lake_cache,
    snapshot_commit_staged,
    snapshot_hash,
    snapshot_publish,
)
from pipelines.schema import ARROW_TYPES, TABLES, Column, ColumnType

# Referenced tables first, so their keys are known when the rows that name them arrive.
IMPORT_ORDER = ("categories", "customers", "products", "promotions", "transactions")
# A table without these columns cannot be used by any model.
REQUIRED_COLUMNS = {"transactions": ("ts", "quantity")}
# Columns computed from others when the file has none: column -> (inputs, description).
COMPUTED_COLUMNS = {
    "transactions": {"amount": (("quantity", "unit_price"), "quantity x unit_price")},
}
SAMPLE_SIZE = 5
DEFAULT_MAX_REJECTED = 0.05
# The CSV reader reads up to 32 blocks ahead of the rows being checked: 4 MiB blocks
# bound that to 128 MiB (16 MiB ones let it hold half a GiB of a large file).
BLOCK_BYTES = 4 << 20
TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
# The spellings the CSV reader turns into booleans itself (each one of the words above).
CSV_TRUE_WORDS = ("true", "True", "TRUE", "1")
CSV_FALSE_WORDS = ("false", "False", "FALSE", "0")
INTEGER_RE = r"^[+-]?[0-9]+(\.0*)?$"
FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"

Progress = Callable[[str, int, int], None]  # table, done, total (bytes or rows)


class ImportFailed(Exception):
    """The import cannot start or finish: a bad mapping, a missing column, an unreadable
    file. The message says which and what to do."""


class ImportRefused(Exception):
    """Too many rows were rejected; `report` says which and why. Nothing was stored."""

    def __init__(self, message: str, report: "ImportReport") -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ImportSource:
    """One file for one lake table: a local path, or a file already fetched from
    Cloud Storage, BigQuery or DVC (`pipelines.sources`): `uri` then names where it came
    from, `version` the data version there (a snapshot's name and time, a DVC revision,
    an object generation) and `details` what else that system said of it."""

    table: str
    path: str | Path
    uri: str = ""
    format: str = ""  # csv | parquet; empty: from the file name
    version: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        name = str(self.uri or self.path).lower()
        if name.endswith((".parquet", ".pq")):
            return "parquet"
        if name.endswith((".csv", ".csv.gz", ".txt")):
            return "csv"
        raise ImportFailed(f"{self.uri or self.path}: say whether it is csv or parquet")


@dataclass
class TableReport:
    """Rows of one table: read, accepted, and rejected per reason.

    A rejection's sample names each row by `position`: "line" (of a CSV file, header
    included, so data row n is line n + 1) or "row" (of a Parquet file, from 1).
    `computed` maps a column the import computed to how (e.g. "quantity x unit_price")."""

    table: str
    rows_read: int = 0
    rows_accepted: int = 0
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)  # reason -> count, sample
    columns: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # rules that could not be checked
    position: str = "row"  # "line" for a CSV file
    computed: dict[str, str] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        return sum(int(entry["count"]) for entry in self.rejected.values())

    @property
    def rejection_rate(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def reject(self, reason: str, rows: np.ndarray, values: Sequence[Any]) -> None:
        entry = self.rejected.setdefault(reason, {"count": 0, "sample": []})
        entry["count"] += len(rows)
        room = SAMPLE_SIZE - len(entry["sample"])
        offset = 1 if self.position == "line" else 0  # the header is line 1
        for row, value in list(zip(rows.tolist(), values, strict=False))[: max(room, 0)]:
            entry["sample"].append({self.position: int(row) + offset, "value": _plain(value)})

    def to_dict(self) -> dict[str, Any]:
        out = {
            "table": self.table,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_rejected,
            "rejected": {k: self.rejected[k] for k in sorted(self.rejected)},
            "columns": list(self.columns),
            "unchecked": list(self.unchecked),
        }
        if self.computed:
            out["computed"] = dict(self.computed)
        return out


@dataclass
class ImportReport:
    tables: dict[str, TableReport] = field(default_factory=dict)
    max_rejected: float = DEFAULT_MAX_REJECTED

    @property
    def rows_rejected(self) -> int:
        return sum(t.rows_rejected for t in self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_rejected": self.max_rejected,
            "rows_rejected": self.rows_rejected,
            "tables": {name: report.to_dict() for name, report in self.tables.items()},
        }

    def lines(self) -> list[str]:
        """The report as text, one line per table and per reason."""
        out = []
        for report in self.tables.values():
            out.append(
                f"{report.table}: {report.rows_read:,} rows read, {report.rows_accepted:,} "
                f"accepted, {report.rows_rejected:,} rejected ({report.rejection_rate:.2%})"
            )
            for reason in sorted(report.rejected, key=lambda r: -report.rejected[r]["count"]):
                entry = report.rejected[reason]
                sample = ", ".join(f"{sample_position(s)}: {s['value']!r}" for s in entry["sample"])
                out.append(f"  {entry['count']:,} x {reason} (e.g. {sample})")
            for column, how in report.computed.items():
                out.append(f"  {column}: computed as {how} (the file has no {column})")
            for note in report.unchecked:
                out.append(f"  not checked: {note}")
        return out


@dataclass
class ImportResult:
    snapshot: Snapshot
    report: ImportReport
    created: bool  # False when the lake already held this content


def sample_position(sample: Mapping[str, Any]) -> str:
    """Where a rejected row is in its file, from one entry of a rejection's sample:
    "line 7" (CSV) or "row 6" (Parquet, and reports written before lines were named)."""
    if "line" in sample:
        return f"line {sample['line']}"
    return f"row {sample['row']}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def parse_mapping(text: str) -> dict[str, str]:
    """`InvoiceDate=ts,Qty=quantity` as {"InvoiceDate": "ts", "Qty": "quantity"}."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        client, sep, lake = part.partition("=")
        if not sep or not client.strip() or not lake.strip():
            raise ImportFailed(f"--map: {part!r} is not client_name=lake_name")
        mapping[client.strip()] = lake.strip()
    return mapping


def load_mapping_file(path: str | Path) -> dict[str, dict[str, str]]:
    """A YAML file of `table: {client_name: lake_name}`."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ImportFailed(f"mapping file {path}: {error}") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(t, str) and isinstance(m, dict) for t, m in loaded.items()
    ):
        raise ImportFailed(f"mapping file {path}: expected `table: {{client_name: lake_name}}`")
    return {t: {str(k): str(v) for k, v in m.items()} for t, m in loaded.items()}


def _source_name(source: ImportSource) -> str:
    """The name a person knows the file by: the file's name, or a BigQuery table's id."""
    if source.uri.startswith("bq://"):
        return source.uri.removeprefix("bq://")
    return Path(source.uri or source.path).name


def source_data_version(source: Mapping[str, Any], snapshot_id: str) -> str:
    """The data version a person recognises for a snapshot with this `source` record:
    the versions its import's sources named (`bq:<table>@<snapshot time>`,
    `dvc:<repo>@<rev>:<path>`, `gs://…#<generation>`), else its files' checksums
    (`<name>@sha256:<hex>`, `; `-separated), else the snapshot's content hash
    `snapshot_id` (the lake's own data, e.g. the generated sample)."""
    if source.get("data_version"):
        return str(source["data_version"])
    files = source.get("files") or []
    if source.get("kind") == "import" and files:
        return "; ".join(f"{f['name']}@sha256:{f['sha256']}" for f in files)
    return snapshot_id


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- reading ---------------------------------------------------------------------


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    if not first.strip():
        raise ImportFailed(f"{path.name}: empty file, expected a header line")
    return next(csv.reader(io.StringIO(first), delimiter=delimiter))


def _file_columns(source: ImportSource, delimiter: str) -> list[str]:
    """The column names of a source file, as its header or Parquet schema gives them."""
    path = Path(source.path)
    if source.file_format == "csv":
        return _csv_header(path, delimiter)
    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except (OSError, pa.ArrowInvalid) as error:
        raise ImportFailed(f"{path.name}: not a Parquet file ({error})") from None


def _batches(
    source: ImportSource,
    delimiter: str,
    progress: Progress | None,
    columns: Mapping[str, pa.DataType],
) -> Iterator[pa.RecordBatch]:
    """The rows of `source` in batches, with its `columns` (file name -> lake type)."""
    path = Path(source.path)
    if source.file_format == "csv":
        yield from _csv_batches(source, delimiter, progress, columns)
        return
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise ImportFailed(f"{path.name}: not a Parquet file ({error})") from None
    total, done = parquet.metadata.num_rows, 0
    for batch in parquet.iter_batches(batch_size=256_000):
        done += batch.num_rows
        if progress:
            progress(source.table, done, total)
        yield batch


def _csv_batches(
    source: ImportSource,
    delimiter: str,
    progress: Progress | None,
    columns: Mapping[str, pa.DataType],
) -> Iterator[pa.RecordBatch]:
    """A CSV file's rows in blocks of BLOCK_BYTES, only its `columns`.

    They are read as their lake types while every value converts as `_convert`'s plain
    cast would convert it (the reader converts in its own threads, and no column is
    held as text). From the first block where one does not, or a number is NaN or
    infinite, the rest of the file is read again as text, from that block's first
    row: the rules then find and name each bad value."""
    path = Path(source.path)
    total = path.stat().st_size
    if not columns:  # nothing of the file is kept: its rows still count
        columns = {_csv_header(path, delimiter)[0]: pa.large_string()}
    text_types = {name: pa.large_string() for name in columns}
    typed = any(kind != pa.large_string() for kind in columns.values())
    rows = shown = 0
    while True:
        stream = pa.OSFile(str(path))
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, skip_rows_after_names=rows),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict(columns) if typed else text_types,
                    include_columns=list(columns),
                    strings_can_be_null=False,
                    null_values=[],
                    true_values=list(CSV_TRUE_WORDS),
                    false_values=list(CSV_FALSE_WORDS),
                ),
            )
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                if typed and not _finite(batch):
                    break
                rows += batch.num_rows
                if progress:
                    shown = max(shown, min(stream.tell(), total))
                    progress(source.table, shown, total)
                yield batch
        except pa.ArrowInvalid as error:
            if not typed:
                raise ImportFailed(f"{path.name}: unreadable CSV ({error})") from None
        finally:
            stream.close()
        typed = False


def _finite(batch: pa.RecordBatch) -> bool:
    """Whether every floating-point value of the batch is a finite number."""
    return all(
        pc.all(pc.is_finite(column)).as_py() is not False
        for column in batch.columns
        if pa.types.is_floating(column.type)
    )


# --- conversion and rules -----------------------------------------------------------


# Bytes a value may start or end with when it has whitespace to trim: ASCII controls,
# the space, and any non-ASCII byte (a Unicode space is several bytes, none ASCII).
_MAYBE_SPACE = np.array([b <= 0x20 or b >= 0x7F for b in range(256)], dtype=bool)


def _as_text(array: pa.Array) -> pa.Array:
    """Text without surrounding whitespace, empty text as null."""
    array = array.cast(pa.large_string())
    if _trimmed(array):
        return array
    text = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.large_string()), text)


def _trimmed(array: pa.Array) -> bool:
    """Whether a large_string array has no nulls, no empty values and no value that
    starts or ends with a byte of whitespace: then trimming would leave it as it is.
    Reads only each value's first and last byte."""
    if array.null_count or not len(array):
        return not len(array)
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype="<i8")[array.offset : array.offset + len(array) + 1]
    starts, ends = offsets[:-1], offsets[1:]
    if buffers[2] is None or not (ends > starts).all():
        return False
    data = np.frombuffer(buffers[2], dtype=np.uint8)
    return not (_MAYBE_SPACE[data[starts]].any() or _MAYBE_SPACE[data[ends - 1]].any())


def _parse_text(text: pa.Array, kind: ColumnType) -> pa.Array:
    """Text to the lake type; a value that does not parse becomes null (the caller
    compares nulls before and after to find them)."""
    target = ARROW_TYPES[kind]
    if kind is ColumnType.STRING:
        return text
    if kind is ColumnType.INTEGER:
        ok = pc.match_substring_regex(text, INTEGER_RE)
        cleaned = pc.replace_substring_regex(text, r"\.0*$", "")
        return pc.if_else(ok, cleaned, None).cast(pa.int64())
    if kind is ColumnType.FLOAT:
        ok = pc.match_substring_regex(text, FLOAT_RE)
        return pc.if_else(ok, text, None).cast(pa.float64())
    if kind is ColumnType.BOOLEAN:
        lower = pc.utf8_lower(text)
        return pc.if_else(
            pc.is_in(lower, pa.array(TRUE_WORDS, pa.large_string())),
            True,
            pc.if_else(pc.is_in(lower, pa.array(FALSE_WORDS, pa.large_string())), False, None),
        )
    parsed = pa.nulls(len(text), pa.timestamp("us"))
    for fmt in TIMESTAMP_FORMATS:
        attempt = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
        parsed = pc.coalesce(parsed, attempt)
    return parsed.cast(target) if kind is ColumnType.DATE else parsed


def _convert(array: pa.Array, kind: ColumnType) -> tuple[pa.Array, pa.Array | None]:
    """(converted, bad): bad marks values present in the file that are no `kind`;
    None when no value is."""
    target = ARROW_TYPES[kind]
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        if kind is not ColumnType.STRING and array.null_count == 0:
            # Fast path: clean ISO text casts in one go; the parsers below, which find
            # each bad value, run only for a batch the plain cast refuses.
            try:
                converted = array.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            else:
                finite = kind is not ColumnType.FLOAT or pc.all(pc.is_finite(converted)).as_py()
                if finite:  # "nan" and "inf" cast too, but are no prices
                    return converted, None
        text = _as_text(array)
        if kind is ColumnType.STRING:
            return text, None
        converted = _parse_text(text, kind)
        bad = pc.and_(pc.is_valid(text), pc.is_null(converted))
        return converted, bad
    if kind is ColumnType.DATE and pa.types.is_timestamp(array.type):
        converted = array.cast(pa.timestamp("us")).cast(pa.date32())
        return converted, None
    try:
        converted = array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _convert(array.cast(pa.large_string()), kind)
    return converted, None


class _KeyIndex:
    """The keys accepted so far, to refuse duplicates across batches: sorted int64
    chunks for integer keys (8 bytes a key), a set for text keys.

    Keys that only grow (line numbers, as exports usually have them) cost one
    comparison with the largest key so far per batch, and no sorting."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.high: int | None = None  # the largest integer key so far
        self.in_order = True
        self.texts: set[str] = set()

    def seen(self, values: pa.Array) -> np.ndarray:
        if pa.types.is_integer(values.type):
            keys = values.to_numpy(zero_copy_only=False)
            found = np.zeros(len(keys), dtype=bool)
            if self.high is None or not len(keys) or keys.min() > self.high:
                return found
            for chunk in self.chunks:
                where = np.searchsorted(chunk, keys).clip(0, len(chunk) - 1)
                found |= chunk[where] == keys
            return found
        return np.fromiter((v in self.texts for v in values.to_pylist()), bool, len(values))

    def add(self, values: pa.Array) -> None:
        if pa.types.is_integer(values.type):
            keys = values.to_numpy(zero_copy_only=False)
            if not len(keys):
                return
            if not _increasing(keys):
                keys = np.sort(keys)
            # In order: each chunk's keys above the ones before, so joined they are sorted.
            self.in_order = self.in_order and (self.high is None or keys[0] > self.high)
            self.chunks.append(keys)
            self.high = int(keys[-1]) if self.high is None else max(self.high, int(keys[-1]))
            if len(self.chunks) > 16:
                merged = np.concatenate(self.chunks)
                if not self.in_order:
                    merged.sort()
                self.chunks, self.in_order = [merged], True
        else:
            self.texts.update(values.to_pylist())

    def all_text(self) -> pa.Array:
        return pa.array(sorted(self.texts), pa.large_string())


def _increasing(keys: np.ndarray) -> bool:
    """Whether each key is larger than the one before it."""
    return bool((keys[1:] > keys[:-1]).all())


@dataclass
class _TableImport:
    """State of one table while its file streams through."""

    source: ImportSource
    spec_columns: list[Column]
    renames: dict[str, str]  # file column -> lake column
    generated_key: bool
    computed: dict[str, tuple[str, ...]]  # lake column computed -> the columns it needs
    report: TableReport
    keys: _KeyIndex = field(default_factory=_KeyIndex)
    rows_seen: int = 0
    ts_low: Any = None
    ts_high: Any = None
    sha256: str = ""  # content hash of the accepted rows, once all are written


def _plan(
    source: ImportSource, columns: list[str], mapping: Mapping[str, str]
) -> tuple[dict[str, str], list[Column], bool, dict[str, tuple[str, ...]]]:
    """(renames file column -> lake column, the lake columns kept in the table's order,
    whether the key is generated, the columns computed -> their inputs); ImportFailed
    for a mapping that names what neither side has, or a required column missing."""
    spec = TABLES[source.table]
    lake_names = {c.name for c in spec.columns}
    unknown_targets = sorted(set(mapping.values()) - lake_names)
    if unknown_targets:
        raise ImportFailed(
            f"{source.table}: the mapping names lake columns {unknown_targets} the table "
            f"does not have; its columns: {sorted(lake_names)}"
        )
    absent = sorted(set(mapping) - set(columns))
    if absent:
        raise ImportFailed(
            f"{source.table}: the mapping names columns {absent} that "
            f"{Path(source.uri or source.path).name} does not have; it has: {columns}"
        )
    renames = {client: lake for client, lake in mapping.items()}
    for name in columns:
        if name in lake_names and name not in renames and name not in renames.values():
            renames[name] = name
    present = set(renames.values())
    missing = [c for c in REQUIRED_COLUMNS.get(source.table, ()) if c not in present]
    if missing:
        raise ImportFailed(
            f"{source.table}: no column for {missing}; map the file's column to it "
            f"(--map TheirName={missing[0]}); the file has: {columns}"
        )
    generated_key = spec.key not in present
    computed = {
        name: inputs
        for name, (inputs, _) in COMPUTED_COLUMNS.get(source.table, {}).items()
        if name not in present and set(inputs) <= present
    }
    kept = [
        c for c in spec.columns if c.name in present or c.name in computed or c.name == spec.key
    ]
    return renames, kept, generated_key, computed


def _apply_rules(
    state: _TableImport,
    batch: pa.RecordBatch,
    now: datetime,
    references: Mapping[tuple[str, str], pa.Array],
) -> pa.Table:
    """The batch's accepted rows, in the lake's columns and types; rejected rows are
    counted in the report under their first broken rule.

    Each rule first asks Arrow whether any row of the batch breaks it (a minimum, a
    maximum, a count) and builds a row mask only when some row does."""
    spec = TABLES[state.source.table]
    n = batch.num_rows
    rows = np.arange(state.rows_seen + 1, state.rows_seen + n + 1)
    state.rows_seen += n
    ok = np.ones(n, dtype=bool)
    raw = {lake: batch.column(client) for client, lake in state.renames.items()}
    converted: dict[str, pa.Array] = {}

    def reject(mask: np.ndarray | pa.Array, reason: str, values: pa.Array | None) -> None:
        if isinstance(mask, pa.Array):
            mask = np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), bool)
        hit = mask & ok
        if not hit.any():
            return
        shown = values.filter(pa.array(hit)).to_pylist()[:SAMPLE_SIZE] if values else []
        state.report.reject(reason, rows[hit], shown or [None] * int(hit.sum()))
        ok[hit] = False

    for column in state.spec_columns:
        if column.name == spec.key and state.generated_key:
            converted[column.name] = pa.array(rows, pa.int64())
            continue
        if column.name in state.computed:
            continue
        values, bad = _convert(raw[column.name], column.type)
        if bad is not None:
            reject(bad, _type_reason(column), raw[column.name])
        converted[column.name] = values
    for name in state.computed:
        converted[name] = _compute(name, converted)
    for column in state.spec_columns:
        values = converted[column.name]
        if not column.nullable and values.null_count:
            reject(values.is_null(), f"{column.name}: missing value", None)
        if column.minimum is not None or column.maximum is not None:
            _check_range(column, values, reject)
        if column.allowed:
            outside = pc.invert(pc.is_in(values, pa.array(column.allowed, pa.large_string())))
            if pc.any(outside).as_py():
                reject(outside, f"{column.name}: not one of {list(column.allowed)}", values)
        if column.type in (ColumnType.TIMESTAMP, ColumnType.DATE):
            limit = pa.scalar(now.replace(tzinfo=None), pa.timestamp("us"))
            stamps = values.cast(pa.timestamp("us"))
            latest = pc.max(stamps)
            if latest.is_valid and latest.as_py() > limit.as_py():
                reject(pc.greater(stamps, limit), f"{column.name}: in the future", values)
    if {"quantity", "unit_price", "amount"} <= set(converted) and "amount" not in state.computed:
        quantity = _floats(converted["quantity"])
        price = _floats(converted["unit_price"])
        amount = _floats(converted["amount"])
        expected = quantity * price
        with np.errstate(invalid="ignore"):
            off = np.abs(amount - expected) > 0.01 + 1e-9 * np.abs(expected)
        reject(off, "amount: differs from quantity x unit_price", converted["amount"])
    for column, target_table, target_column in spec.references:
        if column not in converted:
            continue
        known = references.get((target_table, target_column))
        if known is None:
            note = f"{column} against {target_table}.{target_column} (not imported with it)"
            if note not in state.report.unchecked:
                state.report.unchecked.append(note)
            continue
        values = converted[column]
        unknown = pc.and_(values.is_valid(), pc.invert(pc.is_in(values, value_set=known)))
        if pc.any(unknown).as_py():
            reject(unknown, f"{column}: unknown {target_table}.{target_column}", values)
    keys = converted[spec.key]
    reject(_duplicated(keys, ok) | state.keys.seen(keys), f"{spec.key}: duplicate key", keys)
    columns = {c.name: converted[c.name] for c in state.spec_columns}
    if not ok.all():
        mask = pa.array(ok)
        columns = {name: values.filter(mask) for name, values in columns.items()}
    accepted = pa.table(columns)
    state.keys.add(accepted.column(spec.key).combine_chunks())
    return accepted


def _compute(name: str, converted: Mapping[str, pa.Array]) -> pa.Array:
    """A COMPUTED_COLUMNS column from its converted inputs, null where one is null (the
    row is rejected for that input first)."""
    if name == "amount":
        quantity = converted["quantity"].cast(pa.float64())
        return pc.multiply(quantity, converted["unit_price"].cast(pa.float64()))
    raise KeyError(f"no rule computes {name!r}")


def _check_range(
    column: Column, values: pa.Array, reject: Callable[[np.ndarray, str, pa.Array], None]
) -> None:
    """Reject the values below the column's minimum or above its maximum (NaN and
    nulls are neither; other rules catch them)."""
    numbers = values.cast(pa.float64()) if not pa.types.is_floating(values.type) else values
    bounds = pc.min_max(numbers)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None:
        return
    if column.minimum is not None and low < column.minimum:
        below = pc.less(numbers, pa.scalar(float(column.minimum)))
        reject(below, f"{column.name}: below {column.minimum:g}", values)
    if column.maximum is not None and high > column.maximum:
        above = pc.greater(numbers, pa.scalar(float(column.maximum)))
        reject(above, f"{column.name}: above {column.maximum:g}", values)


def _floats(values: pa.Array) -> np.ndarray:
    """The values as float64, NaN for nulls."""
    numbers = values.cast(pa.float64())
    if numbers.null_count:
        numbers = numbers.fill_null(np.nan)
    return numbers.to_numpy(zero_copy_only=False)


def _duplicated(keys: pa.Array, ok: np.ndarray) -> np.ndarray:
    """Rows whose key appeared in an earlier accepted row of the same batch."""
    if pa.types.is_integer(keys.type) and not keys.null_count:
        numbers = keys.to_numpy(zero_copy_only=False)
        if _increasing(numbers[ok]):
            return np.zeros(len(numbers), dtype=bool)
    values = keys.to_pandas()
    duplicated = np.zeros(len(values), dtype=bool)
    candidates = values[ok]
    duplicated[np.flatnonzero(ok)] = candidates.duplicated(keep="first").to_numpy()
    return duplicated


def _type_reason(column: Column) -> str:
    kind = {
        ColumnType.INTEGER: "a whole number",
        ColumnType.FLOAT: "a number",
        ColumnType.BOOLEAN: "true or false",
        ColumnType.DATE: "a date (YYYY-MM-DD)",
        ColumnType.TIMESTAMP: "a date and time (YYYY-MM-DD HH:MM[:SS])",
        ColumnType.STRING: "text",
    }[column.type]
    return f"{column.name}: not {kind}"


# --- writing ----------------------------------------------------------------------


def _hash_parquet(path: Path) -> tuple[str, int]:
    """The lake's content hash of a Parquet file, read one column at a time (for a
    table with no accepted rows, which the spooled hash does not cover)."""
    parquet = pq.ParquetFile(path)
    digest = hashlib.sha256()
    for name in parquet.schema_arrow.names:
        column = canonical_table(parquet.read(columns=[name])).column(0)
        hash_column(digest, name, column)
    return digest.hexdigest(), parquet.metadata.num_rows


def import_files(
    *,
    root: str | Path,
    sources: Sequence[ImportSource],
    mapping: Mapping[str, Mapping[str, str]] | None = None,
    max_rejected: float = DEFAULT_MAX_REJECTED,
    delimiter: str = ",",
    now: datetime | None = None,
    progress: Progress | None = None,
    origin: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Import one file per table into a new snapshot under `root`.

    Raises ImportFailed for a bad request (unknown table, mapping or column, unreadable
    file) and ImportRefused when a table's rejected share passes `max_rejected`.
    Side effects: writes `root/sha256-<hex>/` (the tables, `manifest.json` with the
    source files, their SHA-256, the mapping and the rejection report), through a
    temporary folder renamed into place; nothing when refused or when identical
    content is already in the lake. A gs:// `root` gets the snapshot written in its
    local cache and then uploaded (pipelines.lake).
    """
    if is_gs_uri(root):
        # A lake on Cloud Storage: import into its local cache, then upload.
        result = import_files(
            root=lake_cache(str(root)),
            sources=sources,
            mapping=mapping,
            max_rejected=max_rejected,
            delimiter=delimiter,
            now=now,
            progress=progress,
            origin=origin,
        )
        snapshot_publish(result.snapshot, root=str(root))
        return result
    root = Path(root)
    now = now or datetime.now(UTC)
    mapping = {t: dict(m) for t, m in (mapping or {}).items()}
    if not 0 <= max_rejected <= 1:
        raise ImportFailed("the rejection limit is a share from 0 to 1, e.g. 0.05")
    if not sources:
        raise ImportFailed("nothing to import: give at least one file")
    by_table: dict[str, ImportSource] = {}
    for source in sources:
        if source.table not in TABLES:
            raise ImportFailed(f"unknown table {source.table!r}; the lake's: {list(IMPORT_ORDER)}")
        if source.table in by_table:
            raise ImportFailed(f"two files for {source.table}: one file per table")
        by_table[source.table] = source
    stray = sorted(set(mapping) - set(by_table))
    if stray:
        raise ImportFailed(f"the mapping is for tables {stray} but no file is given for them")
    if "transactions" not in by_table:
        raise ImportFailed("the transactions table is required: give its file")
    report = ImportReport(max_rejected=max_rejected)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    # The files' checksums are read beside the import (hashlib works outside the GIL).
    checksums = ThreadPoolExecutor(max_workers=1)
    try:
        files, references, period, info, hashes = [], {}, {}, {}, {}
        for table in IMPORT_ORDER:
            source = by_table.get(table)
            if source is None:
                continue
            path = Path(source.path)
            if not path.is_file():
                raise ImportFailed(f"{source.uri or path}: no such file")
            checksum = checksums.submit(file_sha256, path)
            record = {
                "table": table,
                "name": _source_name(source),
                "uri": source.uri or path.name,
                "format": source.file_format,
                "bytes": path.stat().st_size,
            }
            if source.version:
                record["version"] = source.version
            if source.details:
                record["details"] = dict(source.details)
            files.append(record)
            state = _import_table(
                source, mapping.get(table, {}), delimiter, now, references, staging, progress
            )
            record["sha256"] = checksum.result()
            report.tables[table] = state.report
            if state.report.rows_read == 0:
                raise ImportFailed(f"{files[-1]['name']}: no rows")
            if state.report.rejection_rate > max_rejected:
                raise ImportRefused(
                    f"{table}: {state.report.rows_rejected:,} of {state.report.rows_read:,} "
                    f"rows rejected ({state.report.rejection_rate:.2%}), more than the "
                    f"{max_rejected:.2%} allowed; nothing was imported",
                    report,
                )
            spec = TABLES[table]
            if spec.key in state.report.columns and table != "transactions":
                references[(table, spec.key)] = state.keys.all_text()
            if table == "transactions" and state.ts_low is not None:
                period = {
                    "start": state.ts_low.date().isoformat(),
                    "end": state.ts_high.date().isoformat(),
                }
            hashes[table] = state.sha256
            info[table] = {
                "rows": state.report.rows_accepted,
                "sha256": state.sha256,
                "file": f"{table}.parquet",
            }
        snapshot_id = snapshot_hash(hashes)
        final = root / _folder_name(snapshot_id)
        if (final / MANIFEST).exists():
            return ImportResult(_snapshot_from_folder(final), report, created=False)
        versions = [f["version"] for f in files if f.get("version")]
        source_record = {
            "kind": "import",
            **({"data_version": "; ".join(versions)} if versions else {}),
            **dict(origin or {}),
            "files": files,
            "mapping": mapping,
            "rejections": report.to_dict(),
        }
        snapshot = snapshot_commit_staged(
            staging,
            root=root,
            snapshot_id=snapshot_id,
            tables=info,
            source=source_record,
            period=period,
        )
        # Another import that stored the same content first leaves our staging folder.
        return ImportResult(snapshot, report, created=not staging.exists())
    finally:
        checksums.shutdown(cancel_futures=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _store(writer: pq.ParquetWriter, hasher: StreamedTableHash, table: pa.Table) -> None:
    writer.write_table(table)
    hasher.update(table)


def _import_table(
    source: ImportSource,
    mapping: Mapping[str, str],
    delimiter: str,
    now: datetime,
    references: Mapping[tuple[str, str], pa.Array],
    staging: Path,
    progress: Progress | None,
) -> _TableImport:
    """Stream one file through the rules into `staging/<table>.parquet`, hashing the
    accepted rows on the way (`state.sha256`)."""
    spec = TABLES[source.table]
    renames, kept, generated, computed = _plan(source, _file_columns(source, delimiter), mapping)
    state = _TableImport(
        source=source,
        spec_columns=kept,
        renames=dict(renames),
        generated_key=generated,
        computed=computed,
        report=TableReport(
            table=source.table,
            columns=[c.name for c in kept],
            position="line" if source.file_format == "csv" else "row",
            computed={name: COMPUTED_COLUMNS[source.table][name][1] for name in computed},
        ),
    )
    columns = {client: ARROW_TYPES[spec.column(lake).type] for client, lake in renames.items()}
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in kept])
    schema = canonical_table(schema.empty_table()).schema
    target = staging / f"{source.table}.parquet"
    spool = staging / f".spool-{source.table}"
    spool.mkdir()
    with StreamedTableHash(schema, spool_dir=spool) as hasher:
        # A batch is written and spooled in the background while the next one is read
        # and checked (Parquet's encoder and file writes run outside the GIL); at most
        # one batch waits, so memory stays that of two batches.
        with (
            pq.ParquetWriter(target, schema, compression="zstd") as writer,
            ThreadPoolExecutor(max_workers=1) as background,
        ):
            stored: Future | None = None
            for batch in _batches(source, delimiter, progress, columns):
                state.report.rows_read += batch.num_rows
                accepted = canonical_table(_apply_rules(state, batch, now, references))
                state.report.rows_accepted += accepted.num_rows
                if "ts" in accepted.column_names and accepted.num_rows:
                    low, high = pc.min(accepted["ts"]).as_py(), pc.max(accepted["ts"]).as_py()
                    state.ts_low = low if state.ts_low is None else min(state.ts_low, low)
                    state.ts_high = high if state.ts_high is None else max(state.ts_high, high)
                if stored is not None:
                    stored.result()
                stored = background.submit(_store, writer, hasher, accepted)
            if stored is not None:
                stored.result()
        # An empty table is hashed as written: an empty Parquet file reads back with
        # buffers of its own.
        state.sha256 = hasher.hexdigest() if hasher.rows else _hash_parquet(target)[0]
    spool.rmdir()
    return state

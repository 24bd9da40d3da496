"""A local data lake of Parquet snapshots, each in its own folder named by its content
hash; that hash (`sha256:<64 hex>`) is the data version recorded in lineage.

The hash covers the tables' content, not the Parquet bytes: names, column names, Arrow
types and values, in row order. Compression, encoding or the Parquet writer's version
do not change it; one changed value does. A snapshot is written once, atomically, and
never changed: writing the same content again returns the existing snapshot. Its
manifest also records the SHA-256 of each Parquet file's bytes (`file_sha256`, in
snapshots written since it was added): a quick check that a file is still the one
written, which `snapshot_derive` uses before the content hash (a mismatch falls back to
the content hash, so re-encoding a file is no corruption; a changed value is).

The lake's root is a local folder or a Cloud Storage location (`gs://bucket/lake`, the
same layout: `sha256-<hex>/` folders of Parquet files and `manifest.json`). Snapshots
on gs:// are written locally first and then uploaded, the manifest last (a folder with
a manifest is complete); reading one downloads it into a local cache folder
(`PIPELINES_LAKE_CACHE`, by default `portal-lake-cache` in the temporary folder), which
never goes stale because a snapshot never changes. Downloads check each object's
CRC32C, and `Snapshot.load(verify=True)` checks every table against its content hash,
as for a local lake. Vertex AI pipeline steps read the same gs:// folders through their
Cloud Storage FUSE mount instead.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import cloud_storage

SNAPSHOT_ID_RE = re.compile(r"^sha256[:-]([0-9a-f]{64})\Z")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
CACHE_VARIABLE = "PIPELINES_LAKE_CACHE"
REMOTE_MANIFEST_RE = re.compile(r"/(sha256-[0-9a-f]{64})/manifest\.json$")


class SnapshotNotFound(LookupError):
    """No snapshot with that id in the lake (or the lake is empty)."""


class SnapshotCorrupt(Exception):
    """A table's content no longer matches the hash it was stored under."""


def _canonical_type(data_type: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(data_type):
        return _canonical_type(data_type.value_type)
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return pa.large_string()
    if pa.types.is_integer(data_type):
        return pa.int64()
    if pa.types.is_floating(data_type):
        return pa.float64()
    if pa.types.is_timestamp(data_type):
        return pa.timestamp("us", tz=data_type.tz)
    if pa.types.is_date(data_type):
        return pa.date32()
    if pa.types.is_boolean(data_type) or pa.types.is_null(data_type):
        return data_type
    raise TypeError(f"the lake stores no columns of type {data_type}")


def canonical_table(table: pa.Table) -> pa.Table:
    """The table with each column cast to the lake's one type per family (int64,
    float64, large_string, timestamp[us], date32, bool) and in one chunk."""
    columns = []
    for column in table.columns:
        target = _canonical_type(column.type)
        columns.append(column.cast(target) if column.type != target else column)
    return pa.Table.from_arrays(columns, names=table.column_names).combine_chunks()


def _array_bytes(array: pa.Array, *, validity: bool = True) -> list[np.ndarray | memoryview | None]:
    """The parts of an array's content the hash covers, as buffers (no copy where the
    data already has the layout: hashing a large column should not double it). Without
    `validity`, the validity part (one byte per row, 1 where the row is valid) is None
    for the caller to produce: an array without nulls needs no copy of it."""
    parts: list[np.ndarray | memoryview | None] = [
        np.asarray(array.is_valid(), dtype=np.uint8) if validity else None
    ]
    data_type = array.type
    if pa.types.is_null(data_type):
        return parts
    if pa.types.is_large_string(data_type):
        array = array.fill_null("") if array.null_count else array
        buffers = array.buffers()
        offsets = np.frombuffer(buffers[1], dtype="<i8")[
            array.offset : array.offset + len(array) + 1
        ]
        start, end = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        parts.append(offsets - start if start else offsets)
        if buffers[2] is not None:
            parts.append(memoryview(buffers[2])[start:end])
        return parts
    if pa.types.is_boolean(data_type):
        values = array.fill_null(False).to_numpy(zero_copy_only=False)
        parts.append(values.astype(np.uint8))
        return parts
    if pa.types.is_temporal(data_type):
        array = array.view(pa.int32() if pa.types.is_date32(data_type) else pa.int64())
    # fill_null copies even an array without nulls: only where there are some.
    values = (array.fill_null(0) if array.null_count else array).to_numpy(zero_copy_only=False)
    parts.append(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")))
    return parts


def hash_column(digest: Any, name: str, column: pa.Array | pa.ChunkedArray) -> None:
    """Feed one canonical column into a table's digest (table_hash does this for each
    column in order, so a caller may read and hash a large table one column at a time)."""
    digest.update(f"column {name} {column.type}\n".encode())
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    for part in _array_bytes(array):
        view = memoryview(part).cast("B")
        digest.update(view.nbytes.to_bytes(8, "little"))
        digest.update(view)


def table_hash(table: pa.Table) -> str:
    """SHA-256 (hex) of a canonical table's content."""
    digest = hashlib.sha256()
    for name, column in zip(table.column_names, table.columns, strict=True):
        hash_column(digest, name, column)
    return digest.hexdigest()


def snapshot_hash(table_hashes: Mapping[str, str]) -> str:
    """The snapshot id: `sha256:` and the SHA-256 over each table's name and hash."""
    digest = hashlib.sha256()
    for name in sorted(table_hashes):
        digest.update(f"{name} {table_hashes[name]}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def _folder_name(snapshot_id: str) -> str:
    match = SNAPSHOT_ID_RE.match(snapshot_id)
    if match is None:
        if re.fullmatch(r"[0-9a-f]{64}", snapshot_id):
            return f"sha256-{snapshot_id}"
        raise SnapshotNotFound(f"{snapshot_id!r} is not a snapshot id (sha256: and 64 hex digits)")
    return f"sha256-{match.group(1)}"


@dataclass(frozen=True)
class Snapshot:
    """One immutable snapshot of the lake."""

    id: str
    path: Path
    # name -> {"rows": int, "sha256": content hash, "file": name, "file_sha256": hex of
    # the file's bytes (absent in snapshots written before it was recorded)}
    tables: dict[str, dict[str, Any]]
    source: dict[str, Any] = field(default_factory=dict)
    period: dict[str, str] = field(default_factory=dict)  # {"start": ..., "end": ...} of ts
    created_at: str = ""
    # The snapshot this one was derived from (`snapshot_derive`), or "" for one written
    # from data (a sample, an import).
    parent: str = ""

    @property
    def row_counts(self) -> dict[str, int]:
        return {name: int(info["rows"]) for name, info in self.tables.items()}

    def load(
        self, names: Iterable[str] | None = None, *, verify: bool = True
    ) -> dict[str, pd.DataFrame]:
        """The tables as DataFrames; with verify, each is checked against its hash
        (SnapshotCorrupt if a file was changed)."""
        wanted = list(self.tables) if names is None else list(names)
        missing = [n for n in wanted if n not in self.tables]
        if missing:
            raise KeyError(f"snapshot {self.id} has no table {', '.join(missing)}")
        frames = {}
        for name in wanted:
            info = self.tables[name]
            table = canonical_table(pq.read_table(self.path / info["file"]))
            if verify and table_hash(table) != info["sha256"]:
                raise SnapshotCorrupt(
                    f"table {name} of snapshot {self.id} does not match its content hash"
                )
            frames[name] = table.to_pandas()
        return frames


def _parent_of(manifest: Mapping[str, Any]) -> str:
    """The snapshot a manifest's snapshot was derived from, or "". Snapshots derived
    before the manifest recorded `parent` name it in their source (the training runs'
    suppression step, the only deriver, wrote it there)."""
    suppressed = (manifest.get("source") or {}).get("suppressed") or {}
    return str(manifest.get("parent") or suppressed.get("parent") or "")


def _snapshot_from_folder(folder: Path) -> Snapshot:
    manifest = json.loads((folder / MANIFEST).read_text())
    return Snapshot(
        id=manifest["id"],
        path=folder,
        tables=manifest["tables"],
        source=manifest.get("source") or {},
        period=manifest.get("period") or {},
        created_at=manifest.get("created_at", ""),
        parent=_parent_of(manifest),
    )


def _period(table: pa.Table | None) -> dict[str, str]:
    if table is None or "ts" not in table.column_names:
        return {}
    return _period_of(table.column("ts"))


def _period_of(column: pa.Array | pa.ChunkedArray) -> dict[str, str]:
    """{"start", "end"} dates of a `ts` column; {} when it is empty or not a timestamp."""
    if len(column) == 0:
        return {}
    if not pa.types.is_timestamp(column.type) or column.null_count == len(column):
        return {}
    low, high = pc.min(column).as_py(), pc.max(column).as_py()
    return {"start": low.date().isoformat(), "end": high.date().isoformat()}


def write_snapshot(
    *, root: str | Path, tables: Mapping[str, pd.DataFrame], source: Mapping[str, Any] | None = None
) -> Snapshot:
    """Store the tables as a snapshot under `root` and return it.

    Idempotent: identical content returns the snapshot already there (keeping its
    manifest). Side effects: creates `root/sha256-<hex>/` with one Parquet file per
    table and `manifest.json`, written in a temporary folder and renamed into place.
    """
    if cloud_storage.is_gs_uri(root):
        local = write_snapshot(root=lake_cache(str(root)), tables=tables, source=source)
        snapshot_publish(local, root=str(root))
        return local
    root = Path(root)
    if not tables:
        raise ValueError("a snapshot needs at least one table")
    for name in tables:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
            raise ValueError(f"table name {name!r}: lower-case letters, digits and _")
    arrow = {
        name: canonical_table(pa.Table.from_pandas(frame, preserve_index=False))
        for name, frame in tables.items()
    }
    hashes = {name: table_hash(table) for name, table in arrow.items()}
    snapshot_id = snapshot_hash(hashes)
    final = root / _folder_name(snapshot_id)
    if (final / MANIFEST).exists():
        return _snapshot_from_folder(final)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        info = {}
        for name, table in arrow.items():
            pq.write_table(table, staging / f"{name}.parquet", compression="zstd")
            info[name] = {"rows": table.num_rows, "sha256": hashes[name], "file": f"{name}.parquet"}
        period = _period(arrow.get("transactions"))
        return snapshot_commit_staged(
            staging, root=root, snapshot_id=snapshot_id, tables=info, source=source, period=period
        )
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# Rows per batch when a derived snapshot is read and filtered (what one step of the
# rewrite decodes), and per row group written: the memory it needs does not grow with
# the table, and the file it writes can be read a row group at a time again. Parquet
# starts each row group's dictionaries and statistics afresh: groups of 512 Ki rows
# compress 1M transactions in about 15% less CPU than groups of 256 Ki, and hardly
# more than one group of the whole table.
DERIVE_BATCH_ROWS = 65_536
DERIVE_ROW_GROUP_ROWS = 524_288
# Bytes read at a time when a spooled part of a column is fed to a digest.
_SPOOL_READ_BYTES = 1 << 20
# Bytes of column parts a derived table's hash keeps in memory before it spools them
# to temporary files: a table of a few million rows is hashed without a file written
# and read back; a larger one in memory that stops growing at this.
DERIVE_SPOOL_MEMORY_BYTES = 256 << 20
# A validity part of a column without nulls is this byte, once per row.
_VALID = 1


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read a chunk at a time."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _repeated(byte: int, count: int) -> Iterable[memoryview]:
    """`count` copies of `byte`, a buffer of at most _SPOOL_READ_BYTES at a time."""
    block = memoryview(bytes([byte]) * min(count, _SPOOL_READ_BYTES))
    while count > 0:
        yield block[: min(count, len(block))]
        count -= len(block)


class _Spool:
    """One part of one column (validity, values or offsets, string bytes) as it
    arrives, and its length so far: its pieces in memory (a run of valid rows as a
    count), or in an anonymous temporary file once `spill` moved them there."""

    def __init__(self) -> None:
        self.pieces: list[memoryview | int] = []  # a buffer, or that many _VALID bytes
        self.file: Any = None
        self.size = 0

    def write(self, part: np.ndarray | memoryview) -> int:
        """Add a part; returns the bytes it keeps in memory."""
        view = memoryview(part).cast("B")
        self.size += view.nbytes
        if self.file is not None:
            self.file.write(view)
            return 0
        self.pieces.append(view)
        return view.nbytes

    def write_valid(self, rows: int) -> None:
        """Add `rows` validity bytes of rows that are all valid."""
        self.size += rows
        if self.file is not None:
            for block in _repeated(_VALID, rows):
                self.file.write(block)
        elif self.pieces and isinstance(self.pieces[-1], int):
            self.pieces[-1] += rows
        else:
            self.pieces.append(rows)

    def spill(self, folder: Path | None) -> None:
        """Move the pieces to an anonymous temporary file in `folder`; later parts
        go there too."""
        if self.file is not None:
            return
        self.file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 -- closed by close()
        for piece in self._blocks():
            self.file.write(piece)
        self.pieces = []

    def _blocks(self) -> Iterable[memoryview]:
        for piece in self.pieces:
            yield from _repeated(_VALID, piece) if isinstance(piece, int) else (piece,)

    def feed(self, digest: Any, buffer: bytearray) -> None:
        """Feed the part's bytes to `digest` (`buffer` is scratch space for a file)."""
        if self.file is None:
            for block in self._blocks():
                digest.update(block)
            return
        view = memoryview(buffer)
        self.file.seek(0)
        while read := self.file.readinto(buffer):
            digest.update(view[:read])

    def close(self) -> None:
        self.pieces = []
        if self.file is not None:
            self.file.close()


class StreamedTableHash:
    """`table_hash` of a canonical table that arrives one batch at a time, in memory
    that follows the batch, not the table (beyond `memory_bytes`).

    The hash takes the columns in order, each as length-prefixed parts (validity, then
    values or offsets, then a string column's bytes), so nothing of a column can reach
    the digest before its last batch has been seen. Each part is therefore kept as the
    batches arrive: in memory (the batch's own buffers where they already have the
    layout, no copy; a run of rows without nulls as a count) while the parts held stay
    within `memory_bytes`, and from then on in anonymous temporary files in
    `spool_dir` (by default the temporary folder). `hexdigest` feeds them to one digest
    in `table_hash`'s order: the same bytes in the same order, so the same hash as
    `table_hash` over the batches concatenated. Use as a context manager (the spools
    are closed on exit).
    """

    def __init__(
        self, schema: pa.Schema, *, spool_dir: Path | None = None, memory_bytes: int = 0
    ) -> None:
        self.schema = schema
        self.rows = 0
        self._spool_dir = spool_dir
        self._memory_left = memory_bytes
        self._spilled = False
        self._spools: list[list[_Spool]] = [[] for _ in schema]
        self._string_bytes = [0] * len(schema)  # per string column: its bytes so far
        self._batches = 0

    def __enter__(self) -> "StreamedTableHash":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for spools in self._spools:
            for spool in spools:
                spool.close()

    def _spill(self) -> None:
        self._spilled = True
        for spools in self._spools:
            for spool in spools:
                spool.spill(self._spool_dir)

    def update(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Add the next rows (canonical types, the schema's columns in its order;
        ValueError otherwise)."""
        if batch.schema.names != self.schema.names or batch.schema.types != self.schema.types:
            raise ValueError(f"batch schema {batch.schema} is not the table's {self.schema}")
        for index, column in enumerate(batch.columns):
            array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            parts = _array_bytes(array, validity=array.null_count > 0)
            if pa.types.is_large_string(array.type):
                if len(parts) == 2:  # no bytes buffer at all: as a buffer of none
                    parts.append(memoryview(b""))
                offsets = parts[1]  # this batch's, from 0; the column's continue them
                if self._batches:
                    parts[1] = offsets[1:] + self._string_bytes[index]
                self._string_bytes[index] += int(offsets[-1])
            spools = self._spools[index]
            while len(spools) < len(parts):
                spools.append(_Spool())
                if self._spilled:
                    spools[-1].spill(self._spool_dir)
            for spool, part in zip(spools, parts, strict=True):
                if part is None:
                    spool.write_valid(len(array))
                else:
                    self._memory_left -= spool.write(part)
        self.rows += batch.num_rows
        self._batches += 1
        if self._memory_left < 0 and not self._spilled:
            self._spill()

    def hexdigest(self) -> str:
        """The table's hash (hex), as `table_hash` gives it; call once, at the end."""
        if not self._batches:
            self.update(self.schema.empty_table())
        digest = hashlib.sha256()
        buffer = bytearray(_SPOOL_READ_BYTES)
        for field_, spools in zip(self.schema, self._spools, strict=True):
            digest.update(f"column {field_.name} {field_.type}\n".encode())
            for spool in spools:
                digest.update(spool.size.to_bytes(8, "little"))
                spool.feed(digest, buffer)
        return digest.hexdigest()


def _key_batches(parquet: pq.ParquetFile, column: str) -> Iterable[pa.DictionaryArray]:
    """`column` of a Parquet file a batch of DERIVE_BATCH_ROWS at a time, dictionary
    encoded: a string column is read as the file stores it (its row group's dictionary
    once, then small indices), any other is encoded here."""
    for batch in parquet.iter_batches(batch_size=DERIVE_BATCH_ROWS, columns=[column]):
        values = batch.column(0)
        yield values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)


def rows_matching(
    snapshot: Snapshot, *, column: str, select: Callable[[list[str]], Iterable[str]]
) -> dict[str, pa.BooleanArray]:
    """Which rows of each table hold one of the values `select` picks in `column`.

    Reads only `column` of the tables that have it (each value as a string), a batch
    of DERIVE_BATCH_ROWS at a time and twice: for its distinct values, which `select`
    gets (once per table) and returns those whose rows match, then for the rows. The
    column is read dictionary encoded, so both passes work on each distinct value
    once per dictionary (a row group's, in a file the lake wrote) and on small
    indices per row, not on the strings of every row. Memory follows the batch and
    the distinct values, not the table. Returns {table: a boolean array as long as
    the table}, only for tables with a match.
    """
    found: dict[str, pa.BooleanArray] = {}
    for name, info in snapshot.tables.items():
        path = snapshot.path / info["file"]
        schema = pq.read_schema(path)
        if column not in schema.names:
            continue
        field_type = schema.field(column).type
        as_dictionary = (
            [column]
            if pa.types.is_string(field_type) or pa.types.is_large_string(field_type)
            else None
        )
        parquet = pq.ParquetFile(path, read_dictionary=as_dictionary)
        # A row group's batches each carry a copy of its dictionary: each is read once.
        distinct = pa.array([], pa.large_string())
        previous: pa.Array | None = None
        for keys in _key_batches(parquet, column):
            if previous is None or not keys.dictionary.equals(previous):
                previous = keys.dictionary
                values = previous.cast(pa.large_string())
                distinct = pc.unique(pa.concat_arrays([distinct, values]))
        distinct = distinct.drop_null()
        picked = list(select(distinct.to_pylist()))
        if not picked:
            continue
        value_set = pa.array(picked, pa.large_string())
        masks = []
        previous = hits = None  # a dictionary, and which of its entries are picked
        for keys in _key_batches(parquet, column):
            if previous is None or not keys.dictionary.equals(previous):
                previous = keys.dictionary
                hits = pc.is_in(previous.cast(pa.large_string()), value_set=value_set)
            masks.append(pc.fill_null(pc.take(hits, keys.indices), False))
        mask = pa.concat_arrays(masks or [pa.array([], pa.bool_())])
        if pc.any(mask).as_py():
            found[name] = mask
    return found


def rows_where(
    path: str | Path, *, column: str, values: Iterable[str], columns: list[str] | None = None
) -> pa.Table:
    """The rows of a Parquet file whose `column` (compared as a string) is one of
    `values`, with `columns` (all by default), read a batch of DERIVE_BATCH_ROWS at a
    time: memory follows the batch and the rows found, not the file. A string
    `column` is read dictionary encoded (compared once per distinct value of its row
    group, not once per row) and given back with its own type."""
    schema = pq.read_schema(path)
    field = schema.field(column)
    encoded = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    parquet = pq.ParquetFile(path, read_dictionary=[column] if encoded else None)
    value_set = pa.array(sorted(set(values)), pa.large_string())
    wanted = None if columns is None else list(dict.fromkeys([*columns, column]))
    found = []
    previous = hits = None  # a row group's dictionary, and which of its entries match
    for batch in parquet.iter_batches(batch_size=DERIVE_BATCH_ROWS, columns=wanted):
        keys = batch.column(column)
        if pa.types.is_dictionary(keys.type):
            if previous is None or not keys.dictionary.equals(previous):
                previous = keys.dictionary
                hits = pc.is_in(previous.cast(pa.large_string()), value_set=value_set)
            mask = pc.fill_null(pc.take(hits, keys.indices), False)
        else:
            mask = pc.fill_null(pc.is_in(keys.cast(pa.large_string()), value_set=value_set), False)
        if pc.any(mask).as_py():
            part = pa.Table.from_batches([batch.filter(mask)])
            if encoded:
                index = part.schema.get_field_index(column)
                part = part.set_column(index, field, part.column(index).cast(field.type))
            found.append(part)
    wanted_schema = schema if wanted is None else pa.schema([schema.field(n) for n in wanted])
    table = pa.concat_tables(found) if found else wanted_schema.empty_table()
    return table if columns is None else table.select(columns)


@dataclass(frozen=True)
class _Derived:
    rows: int
    sha256: str  # the derived table's content hash
    period: dict[str, str]  # of its `ts`, for the transactions
    parent_sha256: str | None  # the parent's content hash, when it was asked for


def _canonical_schema(parquet: pq.ParquetFile) -> pa.Schema:
    return pa.schema([pa.field(f.name, _canonical_type(f.type)) for f in parquet.schema_arrow])


def _canonical_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """A batch read from a Parquet file as a one-chunk table of the canonical
    `schema` (`canonical_table`), without a cast or copy when it already is one (a
    file the lake wrote)."""
    if batch.schema.types == schema.types and batch.schema.names == schema.names:
        return pa.Table.from_arrays(batch.columns, schema=schema)
    return canonical_table(pa.Table.from_batches([batch])).cast(schema)


class _RowGroups:
    """Parts of a table gathered into row groups of about DERIVE_ROW_GROUP_ROWS and
    written (zstd). Its methods run on one thread, in order."""

    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self.writer = pq.ParquetWriter(target, schema, compression="zstd")
        self.pending: list[pa.Table] = []

    def add(self, part: pa.Table) -> None:
        if part.num_rows:
            self.pending.append(part)
        if sum(t.num_rows for t in self.pending) >= DERIVE_ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending))
            self.pending = []

    def close(self) -> None:
        self.writer.close()


def _derive_table(
    source: Path, target: Path, keep: pa.BooleanArray, *, check_parent: bool, spool_dir: Path
) -> _Derived:
    """Copy the Parquet file `source` to `target` keeping the rows `keep` marks, in one
    pass of batches (canonical types, zstd, row groups of about DERIVE_ROW_GROUP_ROWS),
    hashing what is written on the way; with `check_parent`, the rows read are hashed
    too (the caller compares with the parent's hash). Memory follows the row group
    (and the hash's parts, up to DERIVE_SPOOL_MEMORY_BYTES), not the table.

    Reading, filtering and hashing run here, compressing on a second thread (both
    release the GIL most of the time). The next row group's batches are read while
    the last one is compressed: at most a row group's worth of batches waits between
    them (fewer, and reading would stop for each row group being compressed)."""
    parquet = pq.ParquetFile(source)
    schema = _canonical_schema(parquet)
    offset = written = 0
    ts_bounds: list[pa.Array] = []
    timestamped = "ts" in schema.names and pa.types.is_timestamp(schema.field("ts").type)
    with (
        StreamedTableHash(
            schema, spool_dir=spool_dir, memory_bytes=DERIVE_SPOOL_MEMORY_BYTES
        ) as derived,
        StreamedTableHash(
            schema, spool_dir=spool_dir, memory_bytes=DERIVE_SPOOL_MEMORY_BYTES
        ) as parent,
        ThreadPoolExecutor(max_workers=1) as thread,
    ):
        sink = _RowGroups(target, schema)
        waiting: deque[Future] = deque()
        max_waiting = -(-DERIVE_ROW_GROUP_ROWS // DERIVE_BATCH_ROWS) + 1
        try:
            # Decoded on this thread: decoding and compressing already overlap, and
            # arrow's decoding pool competing with the compression thread for the
            # cores (two where this was measured) cost more CPU than it saved.
            for batch in parquet.iter_batches(batch_size=DERIVE_BATCH_ROWS, use_threads=False):
                whole = _canonical_batch(batch, schema)
                if check_parent:
                    parent.update(whole)
                kept = keep.slice(offset, batch.num_rows)
                # Most batches keep every row: those are written as read, not copied.
                part = whole if kept.true_count == len(kept) else whole.filter(kept)
                offset += batch.num_rows
                written += part.num_rows
                derived.update(part)
                if timestamped and part.num_rows:
                    bounds = pc.min_max(part.column("ts"))
                    ts_bounds.append(
                        pa.array(
                            [bounds["min"].as_py(), bounds["max"].as_py()],
                            schema.field("ts").type,
                        )
                    )
                waiting.append(thread.submit(sink.add, part))
                if len(waiting) > max_waiting:
                    waiting.popleft().result()
            waiting.append(thread.submit(sink.flush))
            # The hashes are taken while the last row group is compressed (hashlib
            # releases the GIL on large buffers), not after.
            derived_sha256 = derived.hexdigest()
            parent_sha256 = parent.hexdigest() if check_parent else None
            while waiting:
                waiting.popleft().result()
        finally:
            for future in waiting:
                future.cancel()
            thread.shutdown(wait=True)
            sink.close()
        if offset != len(keep):
            raise SnapshotCorrupt(f"{source.name} has {offset} rows, its row mask {len(keep)}")
        period = (
            _period_of(pa.chunked_array(ts_bounds, schema.field("ts").type)) if ts_bounds else {}
        )
        return _Derived(
            rows=written, sha256=derived_sha256, period=period, parent_sha256=parent_sha256
        )


def _content_hash(path: Path, *, spool_dir: Path) -> str:
    """The lake's content hash of a Parquet file, read a batch at a time."""
    parquet = pq.ParquetFile(path)
    schema = _canonical_schema(parquet)
    with StreamedTableHash(
        schema, spool_dir=spool_dir, memory_bytes=DERIVE_SPOOL_MEMORY_BYTES
    ) as digest:
        for batch in parquet.iter_batches(batch_size=DERIVE_BATCH_ROWS):
            digest.update(_canonical_batch(batch, schema))
        return digest.hexdigest()


def _file_intact(path: Path, info: Mapping[str, Any]) -> bool:
    """Whether a table's file still has the bytes its manifest recorded (False when the
    manifest recorded none: snapshots written before file hashes were kept)."""
    recorded = info.get("file_sha256")
    return bool(recorded) and file_sha256(path) == recorded


def _corrupt(snapshot: Snapshot, name: str) -> SnapshotCorrupt:
    return SnapshotCorrupt(
        f"table {name} of snapshot {snapshot.id} does not match its content hash"
    )


def snapshot_derive(
    snapshot: Snapshot,
    *,
    root: str | Path,
    drop: Mapping[str, pa.BooleanArray],
    source: Mapping[str, Any],
) -> Snapshot:
    """A new snapshot of the lake: `snapshot` without the rows `drop` marks per table
    (tables not named are copied as they are), with its own content hash and `source`.

    Streams: each changed table is rewritten and hashed in one pass of
    DERIVE_BATCH_ROWS batches, so memory follows the row group written (and the
    hash's parts, up to DERIVE_SPOOL_MEMORY_BYTES), not the table.

    Each table of `snapshot` is checked before it is used (SnapshotCorrupt if its
    content changed): against the SHA-256 of its file's bytes that the manifest
    records (one read of the compressed file), and only where that does not match or
    was not recorded (older snapshots, a file re-encoded since) against its content
    hash, in the same pass as the rewrite for a changed table. The guarantee is the
    content hash's: a derived snapshot never carries content its parent's manifest
    did not vouch for. Idempotent, as `write_snapshot`: the same derived content
    returns the snapshot already there. Side effects: a `sha256-<hex>/` folder under
    `root` (on gs://, written in the local cache and uploaded).
    """
    if cloud_storage.is_gs_uri(root):
        local = snapshot_derive(snapshot, root=lake_cache(str(root)), drop=drop, source=source)
        snapshot_publish(local, root=str(root))
        return local
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        info: dict[str, dict[str, Any]] = {}
        period: dict[str, str] = dict(snapshot.period)
        for name, table in snapshot.tables.items():
            parent_file = snapshot.path / table["file"]
            intact = _file_intact(parent_file, table)
            entry = {"rows": table["rows"], "sha256": table["sha256"], "file": table["file"]}
            if name not in drop:
                if not intact and _content_hash(parent_file, spool_dir=root) != table["sha256"]:
                    raise _corrupt(snapshot, name)
                shutil.copyfile(parent_file, staging / table["file"])
                info[name] = {**entry, "file_sha256": table["file_sha256"]} if intact else entry
                continue
            derived = _derive_table(
                parent_file,
                staging / table["file"],
                pc.invert(drop[name]),
                check_parent=not intact,
                spool_dir=root,
            )
            if not intact and derived.parent_sha256 != table["sha256"]:
                raise _corrupt(snapshot, name)
            info[name] = {**entry, "rows": derived.rows, "sha256": derived.sha256}
            if name == "transactions":
                period = derived.period
        snapshot_id = snapshot_hash({name: t["sha256"] for name, t in info.items()})
        return snapshot_commit_staged(
            staging,
            root=root,
            snapshot_id=snapshot_id,
            tables=info,
            source=source,
            period=period,
            parent=snapshot.id,
        )
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def snapshot_commit_staged(
    staging: Path,
    *,
    root: Path,
    snapshot_id: str,
    tables: dict[str, dict[str, Any]],
    source: Mapping[str, Any] | None,
    period: dict[str, str],
    parent: str = "",
) -> Snapshot:
    """Put a staged snapshot folder (its Parquet files written) in place as
    `root/sha256-<hex>/`: the manifest is written into it last, with the SHA-256 of
    each table's file's bytes where `tables` does not give it (and the `parent` snapshot
    a derived one was made from), and the folder renamed.
    Returns the snapshot; the one already there when another writer stored the same
    content first (then `staging` is left for the caller to remove)."""
    final = root / _folder_name(snapshot_id)
    if (final / MANIFEST).exists():
        return _snapshot_from_folder(final)
    for entry in tables.values():
        entry.setdefault("file_sha256", file_sha256(staging / entry["file"]))
    manifest = {
        "format": FORMAT_VERSION,
        "id": snapshot_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": tables,
        "source": dict(source or {}),
        "period": period,
    }
    if parent:
        manifest["parent"] = parent
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    try:
        os.rename(staging, final)
    except OSError:
        # Another writer stored the same content first: theirs is as good as ours.
        if not (final / MANIFEST).exists():
            raise
    return _snapshot_from_folder(final)


def list_snapshots(*, root: str | Path) -> list[Snapshot]:
    """Every snapshot in the lake, oldest first (on gs://, each downloaded into the
    cache if it is not there yet)."""
    if cloud_storage.is_gs_uri(root):
        manifests = _remote_manifests(str(root))
        found = [_fetch(str(root), m["id"]) for m in manifests]
        return sorted(found, key=lambda s: (s.created_at, s.id))
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        _snapshot_from_folder(folder)
        for folder in root.iterdir()
        if folder.is_dir() and folder.name.startswith("sha256-") and (folder / MANIFEST).exists()
    ]
    return sorted(found, key=lambda s: (s.created_at, s.id))


def open_snapshot(*, root: str | Path, snapshot_id: str | None = None) -> Snapshot:
    """The snapshot with this id (`sha256:<hex>`), or the newest when no id is given.

    The newest is the newest snapshot written from data: a snapshot a training run
    derived (without suppressed customers) is never it, so a later run, the data subject
    sources and the import page's "a run trains on the newest snapshot" all mean the
    last import or sample. On gs://, the snapshot is downloaded into the local cache
    first (CloudStorageError, an OSError, when Cloud Storage cannot be reached)."""
    if cloud_storage.is_gs_uri(root):
        if snapshot_id is None:
            manifests = sorted(
                (m for m in _remote_manifests(str(root)) if not _parent_of(m)),
                key=lambda m: (m.get("created_at", ""), m["id"]),
            )
            if not manifests:
                raise SnapshotNotFound(
                    f"the lake at {root} holds no snapshot yet: import your data with "
                    "`manage.py lake_import`, or create the generated sample with "
                    "`manage.py lake_sample`"
                )
            snapshot_id = manifests[-1]["id"]
        return _fetch(str(root), snapshot_id)
    if snapshot_id is None:
        snapshots = [s for s in list_snapshots(root=root) if not s.parent]
        if not snapshots:
            raise SnapshotNotFound(
                f"the lake at {root} holds no snapshot yet: import your data with "
                "`manage.py lake_import`, or create the generated sample with "
                "`manage.py lake_sample`"
            )
        return snapshots[-1]
    folder = Path(root) / _folder_name(snapshot_id)
    if not (folder / MANIFEST).exists():
        raise SnapshotNotFound(f"no snapshot {snapshot_id} in the lake")
    return _snapshot_from_folder(folder)


# --- the lake on Cloud Storage --------------------------------------------------------


def lake_cache(root: str) -> Path:
    """The local folder holding downloaded (and about to be uploaded) snapshots of the
    gs:// lake `root`: PIPELINES_LAKE_CACHE (or the temporary folder's
    `portal-lake-cache`), then the bucket and the lake's prefix."""
    bucket, prefix = cloud_storage.split_uri(root.rstrip("/") + "/")
    base = os.environ.get(CACHE_VARIABLE) or str(Path(tempfile.gettempdir()) / "portal-lake-cache")
    return Path(base) / bucket / prefix.strip("/")


def _remote_folder(root: str, snapshot_id: str) -> str:
    return f"{root.rstrip('/')}/{_folder_name(snapshot_id)}/"


def _remote_manifests(root: str) -> list[dict[str, Any]]:
    """The manifests of every complete snapshot under the gs:// lake `root`."""
    uris = cloud_storage.list_uris(root.rstrip("/") + "/")
    return [
        json.loads(cloud_storage.download_bytes(uri))
        for uri in uris
        if REMOTE_MANIFEST_RE.search(uri)
    ]


def snapshot_publish(snapshot: Snapshot, *, root: str) -> str:
    """Upload a local snapshot to the gs:// lake `root` (nothing if it is there);
    returns its folder's URI. The manifest goes last, so a reader never sees a folder
    with a manifest whose tables are missing. Side effects: objects under the folder."""
    folder = _remote_folder(root, snapshot.id)
    if folder + MANIFEST in cloud_storage.list_uris(folder):
        return folder
    for info in snapshot.tables.values():
        cloud_storage.upload_file(snapshot.path / info["file"], folder + info["file"])
    cloud_storage.upload_file(snapshot.path / MANIFEST, folder + MANIFEST)
    return folder


def _fetch(root: str, snapshot_id: str) -> Snapshot:
    """The snapshot of the gs:// lake `root`, from the cache or downloaded into it
    (through a temporary folder renamed into place, as a local write is)."""
    cache = lake_cache(root)
    final = cache / _folder_name(snapshot_id)
    if (final / MANIFEST).exists():
        return _snapshot_from_folder(final)
    folder = _remote_folder(root, snapshot_id)
    try:
        manifest_bytes = cloud_storage.download_bytes(folder + MANIFEST)
    except cloud_storage.CloudStorageError as error:
        if "no such object" in str(error):
            raise SnapshotNotFound(f"no snapshot {snapshot_id} in the lake at {root}") from None
        raise
    manifest = json.loads(manifest_bytes)
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for info in manifest["tables"].values():
            cloud_storage.download_to_file(folder + info["file"], staging / info["file"])
        (staging / MANIFEST).write_bytes(manifest_bytes)
        try:
            os.rename(staging, final)
        except OSError:
            # Another reader downloaded it first: the same content.
            if not (final / MANIFEST).exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return _snapshot_from_folder(final)

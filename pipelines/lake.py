"""A local data lake of Parquet snapshots, each in its own folder named by its content
hash; that hash (`sha256:<64 hex>`) is the data version recorded in lineage.

The hash covers the tables' content, not the Parquet bytes: names, column names, Arrow
types and values, in row order. Compression, encoding or the Parquet writer's version
do not change it; one changed value does. A snapshot is written once, atomically, and
never changed: writing the same content again returns the existing snapshot.

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
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
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


def _array_bytes(array: pa.Array) -> Iterable[np.ndarray | memoryview]:
    """The parts of an array's content the hash covers, as buffers (no copy where the
    data already has the layout: hashing a large column should not double it)."""
    yield np.asarray(array.is_valid(), dtype=np.uint8)
    data_type = array.type
    if pa.types.is_null(data_type):
        return
    if pa.types.is_large_string(data_type):
        array = array.fill_null("")
        buffers = array.buffers()
        offsets = np.frombuffer(buffers[1], dtype="<i8")[
            array.offset : array.offset + len(array) + 1
        ]
        start, end = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        yield offsets - start if start else offsets
        if buffers[2] is not None:
            yield memoryview(buffers[2])[start:end]
        return
    if pa.types.is_boolean(data_type):
        values = array.fill_null(False).to_numpy(zero_copy_only=False)
        yield values.astype(np.uint8)
        return
    if pa.types.is_temporal(data_type):
        array = array.view(pa.int32() if pa.types.is_date32(data_type) else pa.int64())
    values = array.fill_null(0).to_numpy(zero_copy_only=False)
    yield np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))


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
    tables: dict[str, dict[str, Any]]  # name -> {"rows": int, "sha256": hex, "file": name}
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
        manifest = {
            "format": FORMAT_VERSION,
            "id": snapshot_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": info,
            "source": dict(source or {}),
            "period": _period(arrow.get("transactions")),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        try:
            os.rename(staging, final)
        except OSError:
            # Another writer stored the same content first: theirs is as good as ours.
            if not (final / MANIFEST).exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return _snapshot_from_folder(final)


# Rows per batch when a derived snapshot is read and filtered (what one step of the
# rewrite decodes), and per row group written: the memory it needs does not grow with
# the table, and the file it writes can be read a row group at a time again.
DERIVE_BATCH_ROWS = 65_536
DERIVE_ROW_GROUP_ROWS = 262_144


def rows_matching(
    snapshot: Snapshot, *, column: str, select: Callable[[list[str]], Iterable[str]]
) -> dict[str, pa.BooleanArray]:
    """Which rows of each table hold one of the values `select` picks in `column`.

    Reads only `column` of the tables that have it (each value as a string); `select`
    gets the distinct values of a table and returns those whose rows match. Returns
    {table: a boolean array as long as the table}, only for tables with a match.
    """
    found: dict[str, pa.BooleanArray] = {}
    for name, info in snapshot.tables.items():
        path = snapshot.path / info["file"]
        if column not in pq.read_schema(path).names:
            continue
        values = pq.read_table(path, columns=[column]).column(0).cast(pa.large_string())
        picked = list(select(pc.unique(values).drop_null().to_pylist()))
        if not picked:
            continue
        mask = pc.fill_null(pc.is_in(values, value_set=pa.array(picked, pa.large_string())), False)
        mask = mask.combine_chunks()
        if pc.any(mask).as_py():
            found[name] = mask
    return found


def _derive_table(source: Path, target: Path, keep: pa.BooleanArray) -> int:
    """Copy the Parquet file `source` to `target` keeping the rows `keep` marks, one
    batch at a time (canonical types, zstd, row groups of about DERIVE_ROW_GROUP_ROWS);
    the rows written."""
    parquet = pq.ParquetFile(source)
    schema = pa.schema([pa.field(f.name, _canonical_type(f.type)) for f in parquet.schema_arrow])
    offset = written = 0
    pending: list[pa.Table] = []
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for batch in parquet.iter_batches(batch_size=DERIVE_BATCH_ROWS):
            part = pa.Table.from_batches([batch]).filter(keep.slice(offset, batch.num_rows))
            offset += batch.num_rows
            if part.num_rows:
                pending.append(canonical_table(part).cast(schema))
                written += part.num_rows
            if sum(t.num_rows for t in pending) >= DERIVE_ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending))
                pending = []
        if pending:
            writer.write_table(pa.concat_tables(pending))
    if offset != len(keep):
        raise SnapshotCorrupt(f"{source.name} has {offset} rows, its row mask {len(keep)}")
    return written


def _hash_tables(
    parent: Snapshot, name: str, keep: pa.BooleanArray | None
) -> tuple[str, int, dict[str, str]]:
    """Check one table of `parent` against its content hash and hash its derived
    copy, a column at a time (the hash is column by column, so a column is the unit
    here, never the whole table). Returns (derived hash, rows, period of `ts`)."""
    info = parent.tables[name]
    path = parent.path / info["file"]
    own, derived = hashlib.sha256(), hashlib.sha256()
    rows, period = int(info["rows"]), {}
    for column_name in pq.read_schema(path).names:
        column = pq.read_table(path, columns=[column_name]).column(0)
        column = column.cast(_canonical_type(column.type)).combine_chunks()
        hash_column(own, column_name, column)
        kept = column if keep is None else column.filter(keep)
        hash_column(derived, column_name, kept)
        rows = len(kept)
        if name == "transactions" and column_name == "ts":
            period = _period_of(kept)
    if own.hexdigest() != info["sha256"]:
        raise SnapshotCorrupt(
            f"table {name} of snapshot {parent.id} does not match its content hash"
        )
    return derived.hexdigest(), rows, period


def snapshot_derive(
    snapshot: Snapshot,
    *,
    root: str | Path,
    drop: Mapping[str, pa.BooleanArray],
    source: Mapping[str, Any],
) -> Snapshot:
    """A new snapshot of the lake: `snapshot` without the rows `drop` marks per table
    (tables not named are copied as they are), with its own content hash and `source`.

    Streams: each changed table is rewritten one batch of DERIVE_BATCH_ROWS at a time,
    and every table is hashed a column at a time, so memory follows the batch and the
    largest column, not the table. Each table of `snapshot` is checked against its
    content hash on the way (SnapshotCorrupt if a file was changed). Idempotent, as
    `write_snapshot`: the same derived content returns the snapshot already there.
    Side effects: a `sha256-<hex>/` folder under `root` (on gs://, written in the
    local cache and uploaded).
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
            keep = pc.invert(drop[name]) if name in drop else None
            target = staging / table["file"]
            if keep is None:
                shutil.copyfile(snapshot.path / table["file"], target)
                digest, rows, table_period = _hash_tables(snapshot, name, keep)
            else:
                # The rewrite (zstd) and the hashing (SHA-256) both run outside the
                # GIL and read only the parent's file: they overlap.
                with ThreadPoolExecutor(max_workers=1) as pool:
                    written = pool.submit(
                        _derive_table, snapshot.path / table["file"], target, keep
                    )
                    digest, rows, table_period = _hash_tables(snapshot, name, keep)
                    if written.result() != rows:
                        raise SnapshotCorrupt(
                            f"derived {name}: wrote {written.result()} rows, hashed {rows}"
                        )
            info[name] = {"rows": rows, "sha256": digest, "file": table["file"]}
            if keep is not None and name == "transactions":
                period = table_period
        snapshot_id = snapshot_hash({name: t["sha256"] for name, t in info.items()})
        final = root / _folder_name(snapshot_id)
        if (final / MANIFEST).exists():
            return _snapshot_from_folder(final)
        manifest = {
            "format": FORMAT_VERSION,
            "id": snapshot_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": info,
            "source": dict(source),
            "period": period,
            "parent": snapshot.id,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        try:
            os.rename(staging, final)
        except OSError:
            # Another writer derived the same content first: theirs is as good as ours.
            if not (final / MANIFEST).exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
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

"""Where an import's files come from: a local path, Cloud Storage, a BigQuery table or
table snapshot, or a file in a DVC repository.

    gs://bucket/exports/tx.csv                a Cloud Storage object (CSV or Parquet)
    bq://project.dataset.table                a BigQuery table as it is now
    bq://project.dataset.table@snapshot       a table snapshot of it (same dataset, or
                                              `@dataset.snapshot` for another one)
    dvc://<repo>@<rev>:<path>                 a file tracked by DVC at a git revision;
                                              <repo> a path or a git URL
    anything else                             a local file

Each source is fetched into a file under a working folder first, streamed so memory
stays flat whatever its size (Cloud Storage and DVC in blocks, BigQuery page by page
into a Parquet file), and then imported like a local file. What names the data's
version outside the lake is recorded with it, beside the content hash the lake gives
every snapshot:

    gs://bucket/name#<generation>                        the object's generation
    bq:project.dataset.snapshot@<snapshot time, UTC>     a table snapshot's name and time
    bq:project.dataset.table@<last modified, UTC>        a table (not fixed: a warning)
    dvc:<repo>@<rev>:<path>                              with the commit <rev> resolved to
"""

import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import cloud_storage
from pipelines.importer import ImportFailed, ImportResult, ImportSource, import_files
from pipelines.lake import lake_cache

BQ_URI = re.compile(
    r"^bq://(?P<project>[a-z][a-z0-9-]{4,29})\.(?P<dataset>\w{1,1024})\.(?P<table>[\w-]{1,1024})"
    r"(?:@(?:(?P<snap_dataset>\w{1,1024})\.)?(?P<snapshot>[\w-]{1,1024}))?\Z"
)
DVC_URI = re.compile(r"^dvc://(?P<repo>.+)@(?P<rev>[^@:]+):(?P<path>[^:\n]+)\Z")
BIGQUERY_PAGE_ROWS = 50_000
COPY_BLOCK = 8 << 20

Progress = Callable[[str, int, int], None]  # table, done, total (bytes or rows)


@dataclass(frozen=True)
class SourceEndpoints:
    """Where the Google APIs are: empty for Google's own (application default
    credentials); an `http://host:port` for a local server speaking their wire format
    (called with anonymous credentials). `bigquery_project` is the project BigQuery
    bills queries to (the table's own when empty)."""

    gcs: str = ""
    bigquery: str = ""
    bigquery_project: str = ""


def source_kind(uri: str) -> str:
    """gs | bq | dvc | file."""
    for prefix in ("gs", "bq", "dvc"):
        if str(uri).startswith(f"{prefix}://"):
            return prefix
    return "file"


def check_source_uri(uri: str) -> str:
    """The URI if it is well formed, else ImportFailed saying what was expected (the
    form's and the command's check, before anything is fetched)."""
    kind = source_kind(uri)
    if kind == "gs":
        try:
            cloud_storage.split_uri(uri)
        except ValueError as error:
            raise ImportFailed(str(error)) from None
    elif kind == "bq" and not BQ_URI.match(uri):
        raise ImportFailed(f"{uri}: expected bq://project.dataset.table[@snapshot]")
    elif kind == "dvc" and not DVC_URI.match(uri):
        raise ImportFailed(f"{uri}: expected dvc://<repo>@<rev>:<path>")
    return uri


def fetch_sources(
    items: Sequence[tuple[str, str]],
    *,
    workdir: str | Path,
    endpoints: SourceEndpoints | None = None,
    progress: Progress | None = None,
) -> list[ImportSource]:
    """Each (table, uri) as an ImportSource on a local file: local paths as they are,
    the others fetched into `workdir` (the caller removes it). Raises ImportFailed with
    the URI and the reason when a source cannot be read."""
    endpoints = endpoints or SourceEndpoints()
    workdir = Path(workdir)
    fetched = []
    if progress is not None:
        reading = progress
        # Fetching is its own stage: the import then reports the same table again.
        progress = lambda table, done, total: reading(f"fetching {table}", done, total)  # noqa: E731
    for table, uri in items:
        kind = source_kind(check_source_uri(uri))
        target = workdir / f"{table}.{len(fetched)}"
        if kind == "gs":
            fetched.append(_fetch_gcs(table, uri, target, endpoints))
        elif kind == "bq":
            fetched.append(_fetch_bigquery(table, uri, target, endpoints, progress))
        elif kind == "dvc":
            fetched.append(_fetch_dvc(table, uri, target, progress))
        else:
            fetched.append(ImportSource(table=table, path=uri))
    return fetched


def _suffix(name: str) -> str:
    lower = name.lower()
    return ".parquet" if lower.endswith((".parquet", ".pq")) else ".csv"


# --- Cloud Storage -------------------------------------------------------------------


def _fetch_gcs(table: str, uri: str, target: Path, endpoints: SourceEndpoints) -> ImportSource:
    path = target.with_suffix(_suffix(uri))
    client = cloud_storage.storage_client(endpoints.gcs or None)
    try:
        info = cloud_storage.download_to_file(uri, path, client=client)
    except cloud_storage.CloudStorageError as error:
        raise ImportFailed(str(error)) from None
    return ImportSource(
        table=table,
        path=path,
        uri=uri,
        version=f"{uri}#{info.generation}",
        details={"generation": info.generation, "crc32c": info.crc32c, "updated": info.updated},
    )


# --- BigQuery ------------------------------------------------------------------------


def bigquery_client(project: str, endpoints: SourceEndpoints) -> Any:
    """A google.cloud.bigquery.Client billing `project`, at the configured endpoint."""
    from google.cloud import bigquery  # noqa: PLC0415 -- slow

    if not endpoints.bigquery:
        return bigquery.Client(project=endpoints.bigquery_project or project)
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415 -- slow

    return bigquery.Client(
        project=endpoints.bigquery_project or project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoints.bigquery},
    )


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _fetch_bigquery(
    table: str,
    uri: str,
    target: Path,
    endpoints: SourceEndpoints,
    progress: Progress | None,
) -> ImportSource:
    from google.api_core import exceptions  # noqa: PLC0415 -- slow

    match = BQ_URI.match(uri)
    if match is None:
        raise ImportFailed(f"{uri}: expected bq://project.dataset.table[@snapshot]")
    project, dataset, name = match.group("project", "dataset", "table")
    base_id = f"{project}.{dataset}.{name}"
    read_id = base_id
    if match.group("snapshot"):
        read_id = f"{project}.{match.group('snap_dataset') or dataset}.{match.group('snapshot')}"
    client = bigquery_client(project, endpoints)
    path = target.with_suffix(".parquet")
    try:
        found = client.get_table(read_id)
        details: dict[str, Any] = {"table": read_id, "type": found.table_type or "TABLE"}
        if match.group("snapshot"):
            definition = found.snapshot_definition
            if found.table_type != "SNAPSHOT" or definition is None:
                raise ImportFailed(f"{uri}: {read_id} is not a table snapshot")
            based_on = definition.base_table_reference
            base = f"{based_on.project}.{based_on.dataset_id}.{based_on.table_id}"
            if base != base_id:
                raise ImportFailed(f"{uri}: {read_id} is a snapshot of {base}, not of {base_id}")
        if found.table_type == "SNAPSHOT" and found.snapshot_definition is not None:
            taken = _utc(found.snapshot_definition.snapshot_time)
            version = f"bq:{read_id}@{taken}"
            details.update(snapshot=read_id, snapshot_time=taken)
        else:
            modified = _utc(found.modified)
            version = f"bq:{read_id}@{modified}"
            details.update(
                modified=modified,
                warning="a table, not a snapshot: its content may change; the content hash "
                "is the only fixed version",
            )
        total = int(found.num_rows or 0)
        rows = client.list_rows(found, page_size=BIGQUERY_PAGE_ROWS)
        written = _write_batches(rows.to_arrow_iterable(), path, table, total, progress)
    except exceptions.GoogleAPIError as error:
        raise ImportFailed(f"{uri}: BigQuery answered: {error}") from None
    if written is None:
        raise ImportFailed(f"{uri}: the table has no rows")
    return ImportSource(
        table=table, path=path, uri=uri, format="parquet", version=version, details=details
    )


def _write_batches(
    batches: Any, path: Path, table: str, total: int, progress: Progress | None
) -> int | None:
    """Write record batches into one Parquet file, one page at a time; the row count,
    or None when there was no row."""
    writer: pq.ParquetWriter | None = None
    done = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema, compression="zstd")
            writer.write_table(pa.Table.from_batches([batch]).cast(writer.schema))
            done += batch.num_rows
            if progress:
                progress(table, done, max(total, done))
    finally:
        if writer is not None:
            writer.close()
    return done if writer is not None else None


# --- DVC -----------------------------------------------------------------------------


def _fetch_dvc(table: str, uri: str, target: Path, progress: Progress | None) -> ImportSource:
    try:
        from dvc.api import DVCFileSystem  # noqa: PLC0415 -- slow
        from dvc.exceptions import DvcException  # noqa: PLC0415 -- slow
    except ImportError:
        raise ImportFailed(
            f"{uri}: dvc:// sources need DVC, the `dvc` extra (pip install '.[dvc]')"
        ) from None

    match = DVC_URI.match(uri)
    if match is None:
        raise ImportFailed(f"{uri}: expected dvc://<repo>@<rev>:<path>")
    repo, rev, name = match.group("repo", "rev", "path")
    path = target.with_suffix(_suffix(name))
    try:
        fs = DVCFileSystem(repo, rev=rev)
        info = fs.info(name)
        total, done = int(info.get("size") or 0), 0
        with fs.open(name, mode="rb") as source, open(path, "wb") as sink:
            while block := source.read(COPY_BLOCK):
                sink.write(block)
                done += len(block)
                if progress:
                    progress(table, done, max(total, done))
        commit = fs.repo.scm.resolve_rev(rev)
    except FileNotFoundError:
        raise ImportFailed(f"{uri}: no {name} in {repo} at {rev}") from None
    except DvcException as error:
        raise ImportFailed(f"{uri}: {error}") from None
    return ImportSource(
        table=table,
        path=path,
        uri=uri,
        version=f"dvc:{repo}@{rev}:{name}",
        details={"commit": commit, "md5": info.get("md5") or ""},
    )


def import_uris(
    *,
    root: str | Path,
    items: Sequence[tuple[str, str]],
    endpoints: SourceEndpoints | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> ImportResult:
    """Fetch each (table, uri) and import them together as one snapshot under `root`
    (`options` are import_files's: mapping, max_rejected, delimiter, now, origin).

    Raises ImportFailed (a source that cannot be read, or import_files's reasons) and
    ImportRefused. Side effects: the fetched copies live in a folder under `root` (on
    the lake's disk, which has room for the data; for a gs:// lake, its local cache)
    and are removed afterwards, whatever happened; then import_files's.
    """
    local = lake_cache(str(root)) if cloud_storage.is_gs_uri(root) else Path(root)
    local.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".fetch-", dir=local))
    try:
        sources = fetch_sources(items, workdir=workdir, endpoints=endpoints, progress=progress)
        return import_files(root=root, sources=sources, progress=progress, **options)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

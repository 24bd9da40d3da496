"""The data lake: snapshots named by a hash of their content, immutable, verified."""

import datetime
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import lake as lake_module
from pipelines.lake import (
    SnapshotCorrupt,
    SnapshotNotFound,
    StreamedTableHash,
    canonical_table,
    list_snapshots,
    open_snapshot,
    rows_matching,
    rows_where,
    snapshot_derive,
    table_hash,
    write_snapshot,
)


def _tables(quantity_dtype: str = "int64") -> dict[str, pd.DataFrame]:
    return {
        "transactions": pd.DataFrame(
            {
                "transaction_id": pd.Series([1, 2, 3], dtype=quantity_dtype),
                "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:30", "2024-01-05 09:15"]),
                "customer_id": ["C1", None, "C3"],
                "amount": [1.5, 2.25, 3.0],
                "promotion": [True, False, True],
            }
        ),
        "promotions": pd.DataFrame(
            {"start_date": [pd.Timestamp("2024-01-01").date()], "discount": [0.2]}
        ),
    }


def test_snapshot_round_trip_keeps_values_and_manifest(tmp_path):
    snapshot = write_snapshot(root=tmp_path, tables=_tables(), source={"origin": "test"})
    assert (tmp_path / f"sha256-{snapshot.id.removeprefix('sha256:')}" / "manifest.json").exists()
    assert snapshot.row_counts == {"transactions": 3, "promotions": 1}
    assert snapshot.source == {"origin": "test"}
    assert snapshot.period == {"start": "2024-01-01", "end": "2024-01-05"}
    loaded = open_snapshot(root=tmp_path, snapshot_id=snapshot.id).load()
    tx = loaded["transactions"]
    assert tx["amount"].tolist() == [1.5, 2.25, 3.0]
    assert tx["customer_id"].isna().tolist() == [False, True, False]
    assert tx["ts"].iloc[1] == pd.Timestamp("2024-01-02 11:30")


def test_snapshot_hash_is_of_content_not_encoding(tmp_path):
    """int32 or int64, written twice: the same content gives the same id; one changed
    value gives another."""
    a = write_snapshot(root=tmp_path, tables=_tables("int64"))
    b = write_snapshot(root=tmp_path, tables=_tables("int32"))
    assert a.id == b.id
    changed = _tables()
    changed["transactions"].loc[2, "amount"] = 3.01
    assert write_snapshot(root=tmp_path, tables=changed).id != a.id
    assert len(list_snapshots(root=tmp_path)) == 2


def test_snapshot_with_tampered_file_is_refused(tmp_path):
    snapshot = write_snapshot(root=tmp_path, tables=_tables())
    path = snapshot.path / "transactions.parquet"
    table = pq.read_table(path)
    amounts = table.column("amount").to_pylist()
    amounts[0] = 99.0
    table = table.set_column(table.schema.get_field_index("amount"), "amount", pa.array(amounts))
    pq.write_table(table, path)
    with pytest.raises(SnapshotCorrupt, match="does not match its content hash"):
        snapshot.load()
    assert snapshot.load(["promotions"])["promotions"]["discount"].tolist() == [0.2]


def test_open_snapshot_unknown_or_empty_lake_says_so(tmp_path):
    with pytest.raises(SnapshotNotFound, match="holds no snapshot"):
        open_snapshot(root=tmp_path / "empty")
    with pytest.raises(SnapshotNotFound, match="no snapshot sha256:"):
        open_snapshot(root=tmp_path, snapshot_id="sha256:" + "0" * 64)
    with pytest.raises(SnapshotNotFound, match="not a snapshot id"):
        open_snapshot(root=tmp_path, snapshot_id="v1")


def test_open_snapshot_without_id_is_the_newest(tmp_path):
    first = write_snapshot(root=tmp_path, tables=_tables())
    changed = _tables()
    changed["promotions"]["discount"] = [0.3]
    second = write_snapshot(root=tmp_path, tables=changed)
    manifest = first.path / "manifest.json"
    manifest.write_text(manifest.read_text().replace(first.created_at, "2000-01-01T00:00:00+00:00"))
    assert [s.id for s in list_snapshots(root=tmp_path)] == [first.id, second.id]
    assert open_snapshot(root=tmp_path).id == second.id


def test_write_snapshot_refuses_bad_table_names(tmp_path):
    with pytest.raises(ValueError, match="table name"):
        write_snapshot(root=tmp_path, tables={"../escape": pd.DataFrame({"a": [1]})})


def _many(rows: int) -> dict[str, pd.DataFrame]:
    return {
        "transactions": pd.DataFrame(
            {
                "transaction_id": range(rows),
                "ts": pd.date_range("2024-01-01", periods=rows, freq="h"),
                "customer_id": [None if n % 50 == 7 else f"C{n % 9}" for n in range(rows)],
                "amount": [n / 4 for n in range(rows)],
            }
        ),
        "promotions": pd.DataFrame({"code": ["P1", "P2"], "discount": [0.1, 0.2]}),
    }


def test_snapshot_derive_streams_in_batches_with_the_same_content_hash(tmp_path, monkeypatch):
    """The rewrite reads 50 rows at a time and writes row groups of about 100, yet its
    id is the one a whole-table write of the same rows gets, its period follows the
    rows kept, and it loads with its hash verified."""
    monkeypatch.setattr(lake_module, "DERIVE_BATCH_ROWS", 50)
    monkeypatch.setattr(lake_module, "DERIVE_ROW_GROUP_ROWS", 100)
    parent = write_snapshot(root=tmp_path / "lake", tables=_many(1_000))
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C0", "C8"} & set(ids))
    assert set(drop) == {"transactions"}  # promotions has no customer column
    derived = snapshot_derive(parent, root=tmp_path / "lake", drop=drop, source={"why": "test"})

    frames = _many(1_000)
    kept = frames["transactions"]["customer_id"].isin(["C0", "C8"])
    frames["transactions"] = frames["transactions"].loc[~kept].reset_index(drop=True)
    whole = write_snapshot(root=tmp_path / "other", tables=frames)
    assert derived.id == whole.id != parent.id
    assert derived.row_counts == {"transactions": int((~kept).sum()), "promotions": 2}
    assert derived.source == {"why": "test"}
    assert derived.period == whole.period
    written = pq.ParquetFile(derived.path / "transactions.parquet").metadata
    groups = [written.row_group(i).num_rows for i in range(written.num_row_groups)]
    assert len(groups) > 1 and max(groups) < 100 + 50
    loaded = derived.load(verify=True)["transactions"]
    assert not loaded["customer_id"].isin(["C0", "C8"]).any()
    assert loaded["customer_id"].isna().sum() == frames["transactions"]["customer_id"].isna().sum()
    # Deriving the same content again returns the snapshot already there.
    again = snapshot_derive(parent, root=tmp_path / "lake", drop=drop, source={"why": "again"})
    assert again.id == derived.id and again.source == {"why": "test"}
    assert len(list_snapshots(root=tmp_path / "lake")) == 2


def test_the_newest_snapshot_is_never_one_a_run_derived(tmp_path):
    """A training run derives a snapshot without suppressed customers; it is newer than
    the import it came from, yet the newest snapshot (what the next run, and the data
    subject sources, read) stays the import. A derived snapshot names its parent, and
    one derived before the manifest recorded it is known by its source."""
    imported = write_snapshot(root=tmp_path, tables=_tables(), source={"kind": "import"})
    drop = rows_matching(imported, column="customer_id", select=lambda ids: {"C1"} & set(ids))
    derived = snapshot_derive(
        imported,
        root=tmp_path,
        drop=drop,
        source={"kind": "import", "suppressed": {"parent": imported.id}},
    )
    manifest = imported.path / "manifest.json"
    manifest.write_text(
        manifest.read_text().replace(imported.created_at, "2000-01-01T00:00:00+00:00")
    )
    assert [s.id for s in list_snapshots(root=tmp_path)] == [imported.id, derived.id]
    assert open_snapshot(root=tmp_path).id == imported.id
    assert derived.parent == imported.id and open_snapshot(root=tmp_path).parent == ""
    older = derived.path / "manifest.json"
    older.write_text(older.read_text().replace(f'"parent": "{imported.id}",', ""))
    assert '"parent"' not in older.read_text().split('"source"')[0]
    assert open_snapshot(root=tmp_path, snapshot_id=derived.id).parent == imported.id
    assert open_snapshot(root=tmp_path).id == imported.id


def test_snapshot_derive_refuses_a_tampered_parent(tmp_path):
    """The parent is checked against its content hash on the way: a changed file is
    not laundered into a derived snapshot with a fresh hash."""
    parent = write_snapshot(root=tmp_path, tables=_many(300))
    path = parent.path / "promotions.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(1, "discount", pa.array([0.1, 0.9])), path)
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C1"})
    with pytest.raises(SnapshotCorrupt, match="promotions"):
        snapshot_derive(parent, root=tmp_path, drop=drop, source={})
    assert [s.id for s in list_snapshots(root=tmp_path)] == [parent.id]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_rows_matching_without_a_match_names_no_table(tmp_path):
    parent = write_snapshot(root=tmp_path, tables=_many(200))
    assert rows_matching(parent, column="customer_id", select=lambda ids: set()) == {}
    assert rows_matching(parent, column="customer_id", select=lambda ids: {"nobody"}) == {}


@pytest.mark.parametrize("ids", ["strings", "integers"])
def test_rows_matching_across_row_groups_and_batches(tmp_path, monkeypatch, ids):
    """Row groups with dictionaries of their own, batches that split them, nulls, and
    a key column of integers (compared as strings): the rows whose value is picked,
    and `select` sees each distinct value once."""
    monkeypatch.setattr(lake_module, "DERIVE_BATCH_ROWS", 30)
    parent = write_snapshot(root=tmp_path / "lake", tables=_many(400))
    path = parent.path / "transactions.parquet"
    table = pq.read_table(path)
    if ids == "integers":
        numbers = [None if v is None else int(v[1:]) for v in table["customer_id"].to_pylist()]
        table = table.set_column(2, "customer_id", pa.array(numbers, pa.int64()))
    pq.write_table(table, path, row_group_size=70)  # groups of 70: 6 dictionaries
    assert pq.ParquetFile(path).metadata.num_row_groups == 6
    seen: list[list[str]] = []

    def pick(values: list[str]) -> list[str]:
        seen.append(values)
        return [v for v in values if v in {"C3", "3", "C8", "8"}]

    drop = rows_matching(parent, column="customer_id", select=pick)
    keys = [None if v is None else str(v) for v in table["customer_id"].to_pylist()]
    assert drop["transactions"].to_pylist() == [k in {"C3", "3", "C8", "8"} for k in keys]
    assert len(seen) == 1 and sorted(seen[0]) == sorted({k for k in keys if k is not None})


def _mixed(rows: int) -> pa.Table:
    """Every canonical type, with nulls, strings of varied length and an all-null column."""
    return canonical_table(
        pa.table(
            {
                "n": pa.array([None if i % 7 == 3 else i for i in range(rows)], pa.int64()),
                "x": pa.array([i / 3 for i in range(rows)], pa.float64()),
                "s": pa.array([None if i % 5 == 0 else "é" * (i % 4) for i in range(rows)]),
                "b": pa.array([None if i % 6 == 1 else i % 2 == 0 for i in range(rows)]),
                "d": pa.array([datetime.date(2024, 1, 1 + i % 28) for i in range(rows)]),
                "ts": pa.array(
                    [datetime.datetime(2024, 1, 1, i % 24) for i in range(rows)],
                    pa.timestamp("us", tz="UTC"),
                ),
                "none": pa.nulls(rows),
            }
        )
    )


@pytest.mark.parametrize("memory", [0, 20_000, 1 << 30], ids=["files", "spilled", "memory"])
@pytest.mark.parametrize("rows, batch", [(1_000, 64), (1_000, 1_000), (37, 5), (0, 10)])
def test_streamed_table_hash_is_table_hash(tmp_path, rows, batch, memory):
    """Fed in batches (empty ones too), the streamed hash is the whole table's hash,
    for every type the lake stores, with nulls: its parts kept in files from the start,
    in memory until the budget is spent and then in files, or in memory throughout."""
    table = _mixed(rows)
    with StreamedTableHash(table.schema, spool_dir=tmp_path, memory_bytes=memory) as streamed:
        streamed.update(table.slice(0, 0))
        for start in range(0, rows, batch):
            streamed.update(table.slice(start, batch))
        assert streamed.hexdigest() == table_hash(table)
        assert streamed.rows == rows
    assert list(tmp_path.iterdir()) == []  # spools are anonymous files


def test_streamed_table_hash_refuses_another_schema():
    """A batch whose columns are not the table's (order, names or types) is refused."""
    table = _mixed(3)
    with StreamedTableHash(table.schema) as streamed, pytest.raises(ValueError, match="schema"):
        streamed.update(table.select(["x", "n"]))


def test_a_derived_snapshot_records_its_files_hashes_and_derives_again(tmp_path):
    """A derived snapshot's manifest records each file's SHA-256; deriving from it
    again checks its files by those and gives the id a whole write of the rows gets."""
    parent = write_snapshot(root=tmp_path / "lake", tables=_many(500))
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C0"} & set(ids))
    first = snapshot_derive(parent, root=tmp_path / "lake", drop=drop, source={})
    for info in first.tables.values():
        assert info["file_sha256"] == lake_module.file_sha256(first.path / info["file"])
    drop = rows_matching(first, column="customer_id", select=lambda ids: {"C1"} & set(ids))
    second = snapshot_derive(first, root=tmp_path / "lake", drop=drop, source={})

    frames = _many(500)
    tx = frames["transactions"]
    frames["transactions"] = tx.loc[~tx["customer_id"].isin(["C0", "C1"])].reset_index(drop=True)
    assert second.id == write_snapshot(root=tmp_path / "other", tables=frames).id
    assert second.load(verify=True)["transactions"]["customer_id"].isin(["C0", "C1"]).sum() == 0


def test_a_parent_file_re_encoded_with_the_same_content_is_accepted(tmp_path):
    """The file hash is a shortcut, not the definition: a parent file written again
    with another compression (other bytes, the same content) still derives."""
    parent = write_snapshot(root=tmp_path, tables=_many(300))
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C0"} & set(ids))
    parent = snapshot_derive(parent, root=tmp_path, drop=drop, source={})
    for name in ("transactions", "promotions"):
        path = parent.path / f"{name}.parquet"
        pq.write_table(pq.read_table(path), path, compression="snappy")
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C1"} & set(ids))
    derived = snapshot_derive(parent, root=tmp_path / "next", drop=drop, source={})
    assert derived.load(verify=True)["promotions"]["discount"].tolist() == [0.1, 0.2]


def test_a_parent_file_of_narrower_types_derives_the_same_snapshot(tmp_path):
    """A parent file whose columns are int32 and string, not the lake's int64 and
    large_string (another writer's file, the same content): it is read as canonical
    types, checked against its content hash and derived as from the lake's own file."""
    parent = write_snapshot(root=tmp_path / "lake", tables=_many(300))
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C4"} & set(ids))
    expected = snapshot_derive(parent, root=tmp_path / "expected", drop=drop, source={})
    path = parent.path / "transactions.parquet"
    table = pq.read_table(path)
    narrow = pa.schema(
        [
            pa.field(
                f.name, {pa.int64(): pa.int32(), pa.large_string(): pa.string()}.get(f.type, f.type)
            )
            for f in table.schema
        ]
    )
    pq.write_table(table.cast(narrow), path, row_group_size=70)
    assert pq.read_schema(path).field("transaction_id").type == pa.int32()
    derived = snapshot_derive(
        _without_file_hashes(parent), root=tmp_path / "lake", drop=drop, source={}
    )
    assert derived.id == expected.id


@pytest.mark.parametrize("table", ["transactions", "promotions"])
def test_snapshot_derive_refuses_a_parent_whose_recorded_file_changed(tmp_path, table):
    """A parent that records its file hashes: a changed value in the table being
    rewritten or in one copied as it is is refused, and nothing is left behind."""
    parent = write_snapshot(root=tmp_path, tables=_many(300))
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C0"} & set(ids))
    parent = snapshot_derive(parent, root=tmp_path, drop=drop, source={})
    path = parent.path / f"{table}.parquet"
    changed = pq.read_table(path)
    index = changed.schema.get_field_index("amount" if table == "transactions" else "discount")
    values = changed.column(index).to_pylist()
    values[1] += 1
    pq.write_table(changed.set_column(index, changed.field(index), pa.array(values)), path)
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C1"} & set(ids))
    before = {s.id for s in list_snapshots(root=tmp_path)}
    with pytest.raises(SnapshotCorrupt, match=table):
        snapshot_derive(parent, root=tmp_path, drop=drop, source={})
    assert {s.id for s in list_snapshots(root=tmp_path)} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_rows_where_reads_matching_rows_batch_by_batch(tmp_path, monkeypatch):
    """Matches across several batches, the columns asked for, and an empty table of
    the right columns when nothing matches."""
    monkeypatch.setattr(lake_module, "DERIVE_BATCH_ROWS", 40)
    snapshot = write_snapshot(root=tmp_path, tables=_many(300))
    path = snapshot.path / "transactions.parquet"
    found = rows_where(path, column="customer_id", values=["C2", "C5"])
    # The key column is read dictionary encoded, and given back with its own type.
    assert found.schema == pq.read_schema(path)
    expected = _many(300)["transactions"]
    expected = expected.loc[expected["customer_id"].isin(["C2", "C5"])]
    assert found.column("transaction_id").to_pylist() == expected["transaction_id"].tolist()
    only = rows_where(path, column="customer_id", values=["C2"], columns=["amount"])
    assert (
        only.column_names == ["amount"] and only.num_rows == (expected["customer_id"] == "C2").sum()
    )
    none = rows_where(path, column="customer_id", values=["nobody"])
    assert none.num_rows == 0 and none.column_names == list(expected.columns)


def _without_file_hashes(snapshot):
    """The snapshot as one written before manifests recorded file hashes."""
    manifest_path = snapshot.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for info in manifest["tables"].values():
        del info["file_sha256"]
    manifest_path.write_text(json.dumps(manifest))
    return open_snapshot(root=snapshot.path.parent, snapshot_id=snapshot.id)


def test_write_snapshot_records_each_files_hash(tmp_path):
    """The manifest holds the SHA-256 of every table file's bytes beside its content hash."""
    snapshot = write_snapshot(root=tmp_path, tables=_tables())
    for info in snapshot.tables.values():
        assert info["file_sha256"] == lake_module.file_sha256(snapshot.path / info["file"])


@pytest.mark.parametrize("tamper", [None, "transactions", "promotions"])
def test_a_parent_without_file_hashes_is_checked_by_its_content_hash(tmp_path, tamper):
    """Older snapshots record no file hashes: each table is then checked against its
    content hash (the rewritten one in the same pass), a changed value refused."""
    parent = _without_file_hashes(write_snapshot(root=tmp_path / "lake", tables=_many(300)))
    if tamper:
        path = parent.path / f"{tamper}.parquet"
        changed = pq.read_table(path)
        index = changed.schema.get_field_index("amount" if tamper == "transactions" else "discount")
        values = changed.column(index).to_pylist()
        values[0] += 1
        pq.write_table(changed.set_column(index, changed.field(index), pa.array(values)), path)
    drop = rows_matching(parent, column="customer_id", select=lambda ids: {"C4"} & set(ids))
    if tamper:
        with pytest.raises(SnapshotCorrupt, match=tamper):
            snapshot_derive(parent, root=tmp_path / "lake", drop=drop, source={})
        return
    derived = snapshot_derive(parent, root=tmp_path / "lake", drop=drop, source={})
    frames = _many(300)
    tx = frames["transactions"]
    frames["transactions"] = tx.loc[tx["customer_id"] != "C4"].reset_index(drop=True)
    assert derived.id == write_snapshot(root=tmp_path / "other", tables=frames).id

"""The data lake: snapshots named by a hash of their content, immutable, verified."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import lake as lake_module
from pipelines.lake import (
    SnapshotCorrupt,
    SnapshotNotFound,
    list_snapshots,
    open_snapshot,
    rows_matching,
    snapshot_derive,
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

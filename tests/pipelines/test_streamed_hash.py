"""The content hash of a table written in batches (StreamedTableHash, as the importer
uses it) is table_hash of the whole table, byte for byte: snapshot ids do not depend on
how a table arrived."""

from datetime import date, datetime
from itertools import pairwise

import pyarrow as pa
import pytest

from pipelines.lake import StreamedTableHash, canonical_table, table_hash


def _table() -> pa.Table:
    return canonical_table(
        pa.table(
            {
                "id": pa.array([1, 2, None, 4, 5, 6, 7], pa.int64()),
                "name": pa.array(["a", "", None, "ddd", "é ü", "f", None], pa.large_string()),
                "price": pa.array([1.5, None, 2.0, float("nan"), 0.0, -1.0, 3.25]),
                "flag": pa.array([True, False, None, True, False, True, None]),
                "day": pa.array([date(2024, 1, d) for d in range(1, 7)] + [None], pa.date32()),
                "ts": pa.array(
                    [datetime(2024, 1, 1, h) for h in range(6)] + [None], pa.timestamp("us")
                ),
            }
        )
    )


@pytest.mark.parametrize("cuts", [(), (3,), (1, 2, 5), (0, 0, 4, 7)])
def test_batches_hash_as_the_whole_table(tmp_path, cuts):
    """Any split into batches, empty ones included, gives the whole table's hash;
    the spool files are gone afterwards."""
    table = _table()
    bounds = [0, *cuts, table.num_rows]
    with StreamedTableHash(table.schema, spool_dir=tmp_path) as hasher:
        for start, end in pairwise(bounds):
            hasher.update(table.slice(start, end - start))
        assert hasher.hexdigest() == table_hash(table)
    assert list(tmp_path.iterdir()) == []


def test_sliced_string_batches_hash_their_own_bytes(tmp_path):
    """Batches that are slices of a larger array (non-zero offsets into shared string
    bytes) hash only their own rows."""
    table = _table()
    with StreamedTableHash(table.schema, spool_dir=tmp_path) as hasher:
        hasher.update(table.slice(2, 3))
        hasher.update(table.slice(5, 2))
        assert hasher.hexdigest() == table_hash(table.slice(2, 5).combine_chunks())


def test_no_rows_hash_as_the_empty_table(tmp_path):
    """Only empty batches hash as the empty table in memory (the importer hashes the
    written file instead, see test_importer)."""
    table = _table()
    with StreamedTableHash(table.schema, spool_dir=tmp_path) as hasher:
        hasher.update(table.slice(0, 0))
        assert hasher.rows == 0
        assert hasher.hexdigest() == table_hash(table.slice(0, 0))

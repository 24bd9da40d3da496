"""Importing the client's own files into the lake: mapping, types, the validate step's
rules per row with a rejection report, the refusal past a rejection rate, the recorded
source, and memory that stays flat in the file size."""

import hashlib
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.importer import (
    ImportFailed,
    ImportRefused,
    ImportSource,
    import_files,
    load_mapping_file,
    parse_mapping,
)
from pipelines.lake import open_snapshot

NOW = datetime(2025, 1, 1, tzinfo=UTC)
HEADER = "InvoiceNo,InvoiceDate,Customer,SKU,Qty,Price,Total,Promo,Channel\n"
MAPPING = {
    "transactions": parse_mapping(
        "InvoiceNo=transaction_id,InvoiceDate=ts,Customer=customer_id,SKU=product_id,"
        "Qty=quantity,Price=unit_price,Total=amount,Promo=promotion,Channel=channel"
    )
}
GOOD = [
    "1,2024-01-01 10:00,C1,P1,2,1.5,3.0,false,store",
    "2,2024-01-02 11:30:00,C2,P1,1,1.5,1.5,no,online",
    "3,2024-01-03T09:15:00,C1,P2,3,2.0,6.0,TRUE,store",
]


def _csv(tmp_path, lines, name="export.csv"):
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def test_import_csv_with_mapping_creates_snapshot_with_source(tmp_path):
    """Client column names map to the lake's, values convert to the lake's types, and
    the snapshot records each file's name and SHA-256 and the mapping."""
    path = _csv(tmp_path, GOOD)
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", path)],
        mapping=MAPPING,
        now=NOW,
    )
    snapshot = open_snapshot(root=tmp_path / "lake")
    assert snapshot.id == result.snapshot.id and result.created
    tx = snapshot.load()["transactions"]
    assert tx["transaction_id"].tolist() == [1, 2, 3]
    assert tx["ts"].tolist() == [
        pd.Timestamp("2024-01-01 10:00"),
        pd.Timestamp("2024-01-02 11:30"),
        pd.Timestamp("2024-01-03 09:15"),
    ]
    assert tx["promotion"].tolist() == [False, False, True]
    assert tx["amount"].tolist() == [3.0, 1.5, 6.0]
    (entry,) = snapshot.source["files"]
    assert entry["name"] == "export.csv" and entry["table"] == "transactions"
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert snapshot.source["mapping"] == MAPPING
    assert snapshot.source["rejections"]["tables"]["transactions"]["rows_rejected"] == 0
    assert snapshot.period == {"start": "2024-01-01", "end": "2024-01-03"}


def test_import_same_content_twice_returns_the_same_snapshot(tmp_path):
    """The snapshot is named by its content: CSV and Parquet with equal rows agree."""
    path = _csv(tmp_path, GOOD)
    first = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", path)],
        mapping=MAPPING,
        now=NOW,
    )
    frame = first.snapshot.load()["transactions"]
    parquet = tmp_path / "tx.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet)
    second = import_files(
        root=tmp_path / "lake", sources=[ImportSource("transactions", parquet)], now=NOW
    )
    assert second.snapshot.id == first.snapshot.id and not second.created


def test_import_parquet_with_own_types_and_mapping_file(tmp_path):
    """A Parquet file with int32 quantities and a YAML mapping imports; the key the file
    lacks is generated from row numbers."""
    parquet = tmp_path / "sales.parquet"
    pq.write_table(
        pa.table(
            {
                "when": pa.array([datetime(2024, 3, 1, 12), datetime(2024, 3, 2, 13)]),
                "units": pa.array([2, 5], pa.int32()),
            }
        ),
        parquet,
    )
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text("transactions:\n  when: ts\n  units: quantity\n")
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", parquet)],
        mapping=load_mapping_file(mapping_file),
        now=NOW,
    )
    tx = result.snapshot.load()["transactions"]
    assert list(tx.columns) == ["transaction_id", "ts", "quantity"]
    assert tx["transaction_id"].tolist() == [1, 2] and tx["quantity"].tolist() == [2, 5]


def test_import_bad_rows_are_rejected_by_reason_with_counts_and_samples(tmp_path):
    """Wrong types, negative quantities, unknown customers, future dates and duplicate
    keys: each row rejected under its reason, counted, and shown in the sample."""
    tx = _csv(
        tmp_path,
        [
            *GOOD,
            "4,yesterday,C1,P1,1,1.5,1.5,false,store",
            "5,2024-01-04,C1,P1,-2,1.5,-3.0,false,store",
            "6,2024-01-04,C1,P1,-1,1.5,-1.5,false,store",
            "7,2024-01-05,C99,P1,1,1.5,1.5,false,store",
            "8,2031-01-05,C1,P1,1,1.5,1.5,false,store",
            "3,2024-01-06,C1,P1,1,1.5,1.5,false,store",
            "9,2024-01-06,C1,P1,two,1.5,3.0,false,store",
        ],
    )
    customers = tmp_path / "crm.csv"
    customers.write_text("Id,City\nC1,Leeds\nC2,York\n")
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", tx), ImportSource("customers", customers)],
        mapping={**MAPPING, "customers": {"Id": "customer_id", "City": "city"}},
        max_rejected=1.0,
        now=NOW,
    )
    report = result.report.tables["transactions"]
    assert report.rows_read == 10 and report.rows_accepted == 3 and report.rows_rejected == 7
    counts = {reason: entry["count"] for reason, entry in report.rejected.items()}
    assert counts == {
        "ts: not a date and time (YYYY-MM-DD HH:MM[:SS])": 1,
        "quantity: below 1": 2,
        "customer_id: unknown customers.customer_id": 1,
        "ts: in the future": 1,
        "transaction_id: duplicate key": 1,
        "quantity: not a whole number": 1,
    }
    assert report.rejected["quantity: below 1"]["sample"] == [
        {"line": 6, "value": -2},
        {"line": 7, "value": -1},
    ]
    assert report.rejected["customer_id: unknown customers.customer_id"]["sample"] == [
        {"line": 8, "value": "C99"}
    ]
    assert report.rejected["ts: not a date and time (YYYY-MM-DD HH:MM[:SS])"]["sample"] == [
        {"line": 5, "value": "yesterday"}
    ]
    assert result.snapshot.load()["transactions"]["transaction_id"].tolist() == [1, 2, 3]
    stored = result.snapshot.source["rejections"]["tables"]["transactions"]
    assert stored["rows_rejected"] == 7
    assert any("7 rejected" in line for line in result.report.lines())


def test_import_duplicate_keys_across_batches_are_rejected(tmp_path, monkeypatch):
    """A key seen in an earlier batch of a large file is still a duplicate."""
    monkeypatch.setattr("pipelines.importer.BLOCK_BYTES", 1024)
    lines = [f"{i},2024-01-01 10:00,C1,P1,1,1.0,1.0,false,store" for i in range(1, 301)]
    lines.append("7,2024-01-01 10:00,C1,P1,1,1.0,1.0,false,store")
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", _csv(tmp_path, lines))],
        mapping=MAPPING,
        now=NOW,
    )
    report = result.report.tables["transactions"]
    assert report.rejected["transaction_id: duplicate key"] == {
        "count": 1,
        "sample": [{"line": 302, "value": 7}],
    }
    assert report.rows_accepted == 300


def test_import_bad_values_in_a_later_block_are_found_and_no_row_is_read_twice(
    tmp_path, monkeypatch
):
    """Clean blocks convert as they are read; from the first block with a value that
    does not convert ("two") or a price that is no number ("inf"), the rest is read as
    text: each bad row is rejected with its own text, every good row kept once, and
    the snapshot is the one the same good rows make on their own."""
    monkeypatch.setattr("pipelines.importer.BLOCK_BYTES", 1024)
    row = "{},2024-01-01 10:00,C1,P1,{},1.0,{},false,store"
    lines = [row.format(i, 1, "1.0") for i in range(1, 401)]
    lines[149] = row.format(150, "two", "1.0")
    lines[299] = "300,2024-01-01 10:00,C1,P1,1,inf,1.0,false,store"
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", _csv(tmp_path, lines))],
        mapping=MAPPING,
        now=NOW,
    )
    report = result.report.tables["transactions"]
    assert report.rows_read == 400 and report.rows_accepted == 398
    assert report.rejected == {
        "quantity: not a whole number": {"count": 1, "sample": [{"line": 151, "value": "two"}]},
        "unit_price: not a number": {"count": 1, "sample": [{"line": 301, "value": "inf"}]},
    }
    tx = result.snapshot.load()["transactions"]
    assert tx["transaction_id"].tolist() == [i for i in range(1, 401) if i not in (150, 300)]
    clean = [line for i, line in enumerate(lines, 1) if i not in (150, 300)]
    alone = import_files(
        root=tmp_path / "other",
        sources=[ImportSource("transactions", _csv(tmp_path, clean, name="clean.csv"))],
        mapping=MAPPING,
        now=NOW,
    )
    assert alone.snapshot.id == result.snapshot.id


def test_import_past_the_rejection_rate_is_refused_and_stores_nothing(tmp_path):
    """One bad row in four is 25%: refused at 20%, accepted at 30%."""
    path = _csv(tmp_path, [*GOOD, "4,2024-01-04,C1,P1,0,1.5,0,false,store"])
    with pytest.raises(ImportRefused, match=r"1 of 4 rows rejected \(25\.00%\)") as refused:
        import_files(
            root=tmp_path / "lake",
            sources=[ImportSource("transactions", path)],
            mapping=MAPPING,
            max_rejected=0.2,
            now=NOW,
        )
    assert refused.value.report.tables["transactions"].rejected["quantity: below 1"]["count"] == 1
    assert not any((tmp_path / "lake").iterdir())
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", path)],
        mapping=MAPPING,
        max_rejected=0.3,
        now=NOW,
    )
    assert result.snapshot.row_counts == {"transactions": 3}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"transactions": {"Nope": "ts"}}, "names columns \\['Nope'\\]"),
        ({"transactions": {"InvoiceDate": "when"}}, "lake columns \\['when'\\]"),
        ({"transactions": {"Qty": "quantity"}}, "no column for \\['ts'\\]"),
        ({"products": {"a": "product_id"}}, "no file is given"),
    ],
)
def test_import_bad_mapping_says_what_is_wrong(tmp_path, mapping, message):
    path = _csv(tmp_path, GOOD)
    with pytest.raises(ImportFailed, match=message):
        import_files(
            root=tmp_path / "lake", sources=[ImportSource("transactions", path)], mapping=mapping
        )


def test_parse_mapping_refuses_malformed_pairs():
    assert parse_mapping("a=b, c=d") == {"a": "b", "c": "d"}
    with pytest.raises(ImportFailed, match="'a' is not client_name=lake_name"):
        parse_mapping("a,b=c")


def test_import_larger_than_a_memory_limit_streams(tmp_path):
    """A CSV of about 60 MB (a million rows) imports while the process grows by less
    than the file's size over its footprint with the libraries loaded (measured about
    50 MB here): the file is never held whole, as pandas' read_csv would."""
    path = tmp_path / "big.csv"
    with open(path, "w") as handle:
        handle.write(HEADER)
        row = "{},2024-01-{:02d} 10:00:00,C{},P{},2,1.25,2.5,false,store\n"
        for i in range(1, 1_000_001):
            handle.write(row.format(i, i % 28 + 1, i % 5000, i % 300))
    size = path.stat().st_size
    script = textwrap.dedent(
        f"""
        import resource, sys
        from pipelines.importer import ImportSource, import_files, parse_mapping
        mapping = {{"transactions": parse_mapping({MAPPING_TEXT!r})}}
        result = import_files(root={str(tmp_path / "lake")!r},
                              sources=[ImportSource("transactions", {str(path)!r})],
                              mapping=mapping)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(result.snapshot.row_counts["transactions"], peak)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    rows, peak = map(int, done.stdout.split())
    assert rows == 1_000_000
    assert peak - _baseline_rss() < size, (peak, size)


MAPPING_TEXT = (
    "InvoiceNo=transaction_id,InvoiceDate=ts,Customer=customer_id,SKU=product_id,"
    "Qty=quantity,Price=unit_price,Total=amount,Promo=promotion,Channel=channel"
)


def _baseline_rss() -> int:
    script = (
        "import resource, pipelines.importer, pandas;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_import_nan_and_padded_values_take_the_careful_parser(tmp_path):
    """ "nan" casts to a float but is no price: rejected; " 4 " is a whole number."""
    path = _csv(
        tmp_path,
        [
            *GOOD,
            "4,2024-01-04, C1 ,P1, 4 ,1.5,6.0,false,store",
            "5,2024-01-04,C1,P1,1,nan,1.5,no,store",
        ],
    )
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", path)],
        mapping=MAPPING,
        max_rejected=1.0,
        now=NOW,
    )
    report = result.report.tables["transactions"]
    assert report.rejected == {
        "unit_price: not a number": {"count": 1, "sample": [{"line": 6, "value": "nan"}]}
    }
    tx = result.snapshot.load()["transactions"]
    assert tx["quantity"].tolist() == [2, 1, 3, 4] and tx["customer_id"].iloc[3] == "C1"


UCI_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
UCI_ROWS = [  # data row n is line n + 1 of the file
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26,2.55,17850,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26,3.39,17850,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28,1.85,17850,United Kingdom",
    "C536379,D,Discount,-1,2010-12-01 09:41,27.50,14527,United Kingdom",
    '536381,22139,"RETROSPOT TEA SET, CERAMIC",2,2010-12-01 09:41,4.95,15311,United Kingdom',
    "536382,22501,PICNIC BASKET,1,2010-12-01 09:45,abc,16098,United Kingdom",
    "536383,35004C,SET OF 3 COLOURED FLYING DUCKS,1,2010-12-01 09:49,,15311,United Kingdom",
    "C536383,35004C,SET OF 3 COLOURED FLYING DUCKS,-1,2010-12-01 09:49,4.65,15311,United Kingdom",
    "536384,82484,WOOD BLACK BOARD ANT WHITE FINISH,3,2010-12-01 09:53,6.45,18074,United Kingdom",
    "536385,22783,SET 3 WICKER OVAL BASKETS,4,2010-12-01 09:56,0,17420,United Kingdom",
    "536386,84879,ASSORTED COLOUR BIRD ORNAMENT,160,2010-12-01 09:57,1.45,16029,United Kingdom",
    "536387,22197,SMALL POPCORN HOLDER,12,2010-12-01 10:03,0.85,16029,United Kingdom",
    "536388,21754,HOME BUILDING BLOCK WORD,3,2010-12-01 10:10,5.95,16250,United Kingdom",
    "536389,22941,CHRISTMAS LIGHTS 10 REINDEER,6,2010-12-01 10:03,8.50,12431,Australia",
]
UCI_MAPPING = (
    "InvoiceDate=ts,CustomerID=customer_id,StockCode=product_id,Quantity=quantity,"
    "UnitPrice=unit_price"
)


def test_import_uci_shaped_export_computes_amount_and_names_file_lines(tmp_path):
    """An export with Quantity and UnitPrice but no line total gets amount = quantity x
    unit_price per accepted row; bad, missing and zero unit prices and negative
    quantities (returns) are rejected under their own reasons, each named by its line
    in the file (header = line 1); the report and the snapshot say amount was computed."""
    path = tmp_path / "online_retail.csv"
    path.write_text(UCI_HEADER + "\n" + "\n".join(UCI_ROWS) + "\n")
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", path)],
        mapping={"transactions": parse_mapping(UCI_MAPPING)},
        max_rejected=0.5,
        now=NOW,
    )
    report = result.report.tables["transactions"]
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (14, 9, 5)
    assert report.rejected == {
        "quantity: below 1": {
            "count": 2,
            "sample": [{"line": 5, "value": -1}, {"line": 9, "value": -1}],
        },
        "unit_price: not a number": {"count": 1, "sample": [{"line": 7, "value": "abc"}]},
        "unit_price: missing value": {"count": 1, "sample": [{"line": 8, "value": None}]},
        "unit_price: below 0.01": {"count": 1, "sample": [{"line": 11, "value": 0.0}]},
    }
    assert report.computed == {"amount": "quantity x unit_price"}
    tx = result.snapshot.load()["transactions"]
    assert list(tx.columns) == [
        "transaction_id",
        "ts",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "amount",
    ]
    assert tx["transaction_id"].tolist() == [1, 2, 3, 5, 9, 11, 12, 13, 14]
    assert tx["amount"].tolist() == pytest.approx(
        [15.3, 20.34, 11.1, 9.9, 19.35, 232.0, 10.2, 17.85, 51.0]
    )
    stored = result.snapshot.source["rejections"]["tables"]["transactions"]
    assert stored["computed"] == {"amount": "quantity x unit_price"}
    assert stored["rejected"]["unit_price: not a number"]["sample"] == [{"line": 7, "value": "abc"}]
    text = "\n".join(result.report.lines())
    assert "1 x unit_price: not a number (e.g. line 7: 'abc')" in text
    assert "amount: computed as quantity x unit_price (the file has no amount)" in text


def test_import_with_amount_and_unit_price_keeps_the_files_amount(tmp_path):
    """Mapping both a line total and a unit price computes nothing: the file's amount
    is kept and a row whose amount is not quantity x unit_price is rejected."""
    path = _csv(tmp_path, [*GOOD, "4,2024-01-04,C1,P1,2,1.5,4.0,false,store"])
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", path)],
        mapping=MAPPING,
        max_rejected=1.0,
        now=NOW,
    )
    report = result.report.tables["transactions"]
    assert report.computed == {}
    assert report.rejected == {
        "amount: differs from quantity x unit_price": {
            "count": 1,
            "sample": [{"line": 5, "value": 4.0}],
        }
    }
    assert "computed" not in result.snapshot.source["rejections"]["tables"]["transactions"]
    assert result.snapshot.load()["transactions"]["amount"].tolist() == [3.0, 1.5, 6.0]


def test_import_parquet_rejections_name_rows_not_lines(tmp_path):
    """A Parquet file has no lines: its rejected rows are named by row (first row 1)."""
    parquet = tmp_path / "sales.parquet"
    pq.write_table(
        pa.table(
            {
                "ts": pa.array([datetime(2024, 3, 1, 12), datetime(2024, 3, 2, 13)]),
                "quantity": pa.array([2, -1], pa.int64()),
                "unit_price": pa.array([1.25, 2.0]),
            }
        ),
        parquet,
    )
    result = import_files(
        root=tmp_path / "lake",
        sources=[ImportSource("transactions", parquet)],
        max_rejected=1.0,
        now=NOW,
    )
    report = result.report.tables["transactions"]
    assert report.rejected["quantity: below 1"]["sample"] == [{"row": 2, "value": -1}]
    assert "(e.g. row 2: -1)" in "\n".join(result.report.lines())
    assert result.snapshot.load()["transactions"]["amount"].tolist() == [2.5]

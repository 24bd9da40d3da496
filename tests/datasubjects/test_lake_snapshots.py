"""The lake source reads every snapshot the lake holds, not only the newest: an access
answer must include the rows past model versions were trained on."""

from datetime import UTC, datetime

import pandas as pd
import pytest
import time_machine

from datasubjects.connectors import Identity, LakeConnector

CONFIG = {
    "tables": {"customers": "customer_id", "transactions": "customer_id"},
    "person_table": "customers",
    "email_column": "email",
}


def _customers(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "email"])


def _transactions(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["transaction_id", "customer_id", "amount"])


@pytest.fixture()
def two_snapshots(tmp_path):
    """An older snapshot and a newer one: the person's customer row is in both (same
    content), T1 only in the older one, T2 in both, T4 only in the newer one; carol
    only in the older one."""
    from pipelines.lake import write_snapshot

    root = tmp_path / "lake"
    customers_old = _customers(("C1", "alice@example.com"), ("C3", "carol@example.com"))
    customers_new = _customers(("C1", "alice@example.com"))
    with time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False):
        old = write_snapshot(
            root=root,
            tables={
                "customers": customers_old,
                "transactions": _transactions(
                    ("T1", "C1", 10.0), ("T2", "C1", 20.0), ("T3", "C3", 5.0)
                ),
            },
        )
    with time_machine.travel(datetime(2026, 2, 1, tzinfo=UTC), tick=False):
        new = write_snapshot(
            root=root,
            tables={
                "customers": customers_new,
                "transactions": _transactions(("T2", "C1", 20.0), ("T4", "C1", 30.0)),
            },
        )
    return LakeConnector({"root": str(root), **CONFIG}), old, new


def _person(email: str) -> Identity:
    return Identity(email=email, subject_ref="ref")


def test_find_reads_every_snapshot_and_gives_each_row_once(two_snapshots):
    """A row only the older snapshot holds is found; a row both hold is given once; the
    queries say which snapshot each table's rows came from."""
    connector, old, new = two_snapshots
    finding = connector.find(_person("alice@example.com"))
    assert sorted(row["transaction_id"] for row in finding.tables["transactions"]) == [
        "T1",
        "T2",
        "T4",
    ]
    assert [row["customer_id"] for row in finding.tables["customers"]] == ["C1"]
    assert finding.rows == 4
    transactions = [q for q in finding.queries if "transactions.parquet" in q]
    assert transactions == [
        f"snapshot {new.id}: transactions.parquet WHERE customer_id IN (C1): 2 row(s), "
        "2 not in a newer snapshot",
        f"snapshot {old.id}: transactions.parquet WHERE customer_id IN (C1): 2 row(s), "
        "1 not in a newer snapshot",
    ]


def test_person_only_in_an_older_snapshot_is_found(two_snapshots):
    """An address the newest snapshot no longer holds still maps to its customer id in
    the older one, and its rows there are found (as the lineage search finds them)."""
    connector, old, _ = two_snapshots
    assert connector.customer_ids("carol@example.com") == {"C3"}
    finding = connector.find(_person("carol@example.com"))
    assert [row["transaction_id"] for row in finding.tables["transactions"]] == ["T3"]
    assert connector.snapshots_containing(_person("carol@example.com")) == [(old.id, 2)]
    assert finding.rows == 2


def test_unchanged_table_is_read_once(two_snapshots):
    """A table with the same content in two snapshots is read once, and the query
    evidence says so."""
    from pipelines.lake import write_snapshot

    connector, _, new = two_snapshots
    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        newest = write_snapshot(
            root=connector.root,
            tables={
                "customers": _customers(("C1", "alice@example.com")),
                "transactions": _transactions(("T5", "C1", 1.0)),
            },
        )
    finding = connector.find(_person("alice@example.com"))
    assert [row["customer_id"] for row in finding.tables["customers"]] == ["C1"]
    assert (
        f"snapshot {new.id}: customers same content as in snapshot {newest.id}: not read again"
        in finding.queries
    )
    assert sorted(r["transaction_id"] for r in finding.tables["transactions"]) == [
        "T1",
        "T2",
        "T4",
        "T5",
    ]

"""The sample data generator: deterministic, sized, realistic enough to show seasons,
customer groups and drift."""

from datetime import date

import numpy as np
import pandas as pd

from pipelines.lake import list_snapshots, write_snapshot
from pipelines.sample_data import (
    DEMO_SHIFT,
    PERIOD_START,
    Shift,
    ensure_sample_snapshot,
    generate_retail_data,
)
from pipelines.schema import TABLES


def test_generator_same_seed_and_size_give_same_content_hash(tmp_path):
    first = generate_retail_data(seed=11, n_transactions=5_000)
    second = generate_retail_data(seed=11, n_transactions=5_000)
    a = write_snapshot(root=tmp_path / "a", tables=first.tables, source=first.params)
    b = write_snapshot(root=tmp_path / "b", tables=second.tables, source=second.params)
    assert a.id == b.id
    assert a.id.startswith("sha256:") and len(a.id) == len("sha256:") + 64


def test_generator_other_seed_or_size_give_other_hash(tmp_path):
    ids = {
        write_snapshot(
            root=tmp_path, tables=generate_retail_data(seed=s, n_transactions=n).tables
        ).id
        for s, n in ((11, 5_000), (12, 5_000), (11, 6_000))
    }
    assert len(ids) == 3


def test_generator_shift_gives_other_hash_and_visible_drift(tmp_path):
    base = generate_retail_data(seed=11, n_transactions=20_000)
    shifted = generate_retail_data(seed=11, n_transactions=20_000, shift=DEMO_SHIFT)
    base_id = write_snapshot(root=tmp_path, tables=base.tables).id
    shifted_id = write_snapshot(root=tmp_path, tables=shifted.tables).id
    assert base_id != shifted_id
    assert shifted.params["shift"]["new_region"] == "Northern Ireland"

    start = (
        pd.Timestamp("2024-12-31")
        - pd.Timedelta(weeks=DEMO_SHIFT.weeks_before_end)
        + pd.Timedelta(days=1)
    )
    customers = shifted.tables["customers"]
    newcomers = set(customers.loc[customers["region"] == "Northern Ireland", "customer_id"])
    assert newcomers and "Northern Ireland" not in set(base.tables["customers"]["region"])
    tx = shifted.tables["transactions"]
    by_newcomers = tx[tx["customer_id"].isin(newcomers)]
    assert len(by_newcomers) > 0.05 * (tx["ts"] >= start).sum()
    assert by_newcomers["ts"].min() >= start

    def mean_price(data, category_name):
        products = data.tables["products"]
        category_id = data.tables["categories"].set_index("category")["category_id"][category_name]
        ids = products.loc[products["category_id"] == category_id, "product_id"]
        lines = data.tables["transactions"]
        lines = lines[lines["product_id"].isin(ids) & (lines["ts"] >= start) & ~lines["promotion"]]
        return (
            lines["unit_price"]
            / lines["product_id"].map(products.set_index("product_id")["list_price"])
        ).mean()

    assert mean_price(shifted, "Electronics") > 1.1 * mean_price(base, "Electronics")
    assert abs(mean_price(shifted, "Dairy") / mean_price(base, "Dairy") - 1) < 0.02


def test_generator_writes_every_source_with_the_schema_columns():
    data = generate_retail_data(seed=5, n_transactions=8_000)
    assert set(data.tables) == set(TABLES)
    for name, table in TABLES.items():
        assert list(data.tables[name].columns) == [c.name for c in table.columns]
    tx = data.tables["transactions"]
    assert len(tx) == 8_000
    assert tx["ts"].min().date() >= PERIOD_START and tx["ts"].max().year == 2024
    customers = data.tables["customers"]
    assert customers["email"].str.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(com|org|net)").all()
    assert customers["consent_profiling"].mean() > 0.7 and not customers["consent_profiling"].all()
    assert customers["birth_year"].between(1940, 2006).all()
    assert set(tx["channel"]) == {"store", "online"}
    np.testing.assert_allclose(tx["amount"], (tx["quantity"] * tx["unit_price"]).round(2))


def test_generator_demand_has_weekly_yearly_and_holiday_shape():
    tx = generate_retail_data(seed=5, n_transactions=60_000).tables["transactions"]
    daily = tx.groupby(tx["ts"].dt.normalize())["quantity"].sum()
    weekday = daily.groupby(daily.index.day_of_week).mean()
    assert weekday[5] > 1.2 * weekday[1]  # Saturday busier than Tuesday
    assert daily[pd.Timestamp(date(2024, 12, 25))] < 0.1 * daily["2024-12-16":"2024-12-22"].mean()
    by_year = daily.groupby(daily.index.year).sum()
    assert by_year[2024] > by_year[2023]  # growth


def test_generator_customer_groups_buy_differently():
    data = generate_retail_data(seed=5, n_transactions=60_000)
    tx = data.tables["transactions"]
    per_customer = tx.groupby("customer_id").agg(
        online=("channel", lambda c: (c == "online").mean()),
        promotion=("promotion", "mean"),
        lines=("amount", "size"),
    )
    regular = per_customer[per_customer["lines"] >= 20]
    assert regular["online"].quantile(0.1) < 0.15 < 0.5 < regular["online"].quantile(0.9)
    assert regular["promotion"].quantile(0.9) > 1.5 * regular["promotion"].quantile(0.1)


def test_shift_refuses_unknown_category_or_region():
    for bad in ({"price_categories": ("Jewellery",)}, {"new_region": "Atlantis"}):
        try:
            Shift(**bad)
        except ValueError as error:
            assert "unknown" in str(error) or "must be one of" in str(error)
        else:
            raise AssertionError(f"Shift accepted {bad}")


def test_ensure_sample_snapshot_reuses_the_stored_snapshot(tmp_path):
    first = ensure_sample_snapshot(root=tmp_path, seed=9, n_transactions=3_000)
    again = ensure_sample_snapshot(root=tmp_path, seed=9, n_transactions=3_000)
    assert again.id == first.id and again.created_at == first.created_at
    assert len(list_snapshots(root=tmp_path)) == 1
    assert first.source["seed"] == 9 and first.source["n_transactions"] == 3_000
    assert first.period == {"start": "2023-01-01", "end": "2024-12-31"}

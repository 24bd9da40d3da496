"""A snapshot unfit for training stops the run at the validate step, with the reasons,
before anything is trained or stored."""

import numpy as np
import pytest

from pipelines.lake import write_snapshot
from pipelines.steps import STEPS, RunContext, run_pipeline
from pipelines.validation import ValidationFailed, validate_tables


def _broken_copy(sample_lake, change) -> str:
    tables = {name: frame.copy() for name, frame in sample_lake.base.load().items()}
    change(tables)
    return write_snapshot(root=sample_lake.root, tables=tables).id


def test_validate_sample_data_has_no_problems(sample_lake):
    tables = sample_lake.base.load()
    assert validate_tables(tables, tables) == []


def test_validation_failure_stops_run_with_every_reason(sample_lake, tmp_path):
    def corrupt(tables):
        tx = tables["transactions"]
        tx["quantity"] = tx["quantity"].astype("float64")
        tx.loc[[3, 7, 11], "quantity"] = np.nan
        tx.loc[[5, 6], "unit_price"] = -1.0
        tx.loc[8, "channel"] = "fax"
        tx.loc[9, "product_id"] = "P99999"

    snapshot_id = _broken_copy(sample_lake, corrupt)
    lines: list[str] = []
    with pytest.raises(ValidationFailed) as caught:
        run_pipeline(
            model_kind="forecasting",
            lake_root=sample_lake.root,
            artifact_root=tmp_path / "artifacts",
            snapshot_id=snapshot_id,
            log=lines.append,
        )
    problems = caught.value.problems
    assert "transactions.quantity: 3 missing values" in problems
    assert any(
        p.startswith("transactions.unit_price: 2 values outside [0.01, 100000]") for p in problems
    )
    assert any(
        p.startswith("transactions.channel: 1 value not in ['store', 'online'], e.g. fax")
        for p in problems
    )
    assert any(
        p.startswith(
            "transactions.product_id: 1 row with no matching products.product_id, e.g. P99999"
        )
        for p in problems
    )
    assert "4 problems" in str(caught.value)
    assert f"problem: {problems[0]}" in lines
    assert not (tmp_path / "artifacts").exists()  # nothing trained, nothing stored


def test_validation_reports_missing_columns_and_duplicate_keys(sample_lake):
    def corrupt(tables):
        tables["customers"] = tables["customers"].drop(columns=["consent_profiling"])
        products = tables["products"]
        products.loc[1, "product_id"] = products.loc[0, "product_id"]

    snapshot_id = _broken_copy(sample_lake, corrupt)
    ctx = RunContext(
        model_kind="segmentation",
        lake_root=sample_lake.root,
        artifact_root=sample_lake.artifacts,
        snapshot_id=snapshot_id,
    )
    STEPS[0].run(ctx)
    with pytest.raises(ValidationFailed) as caught:
        STEPS[1].run(ctx)
    assert "customers: missing column consent_profiling" in caught.value.problems
    assert "products.product_id: 1 duplicate key" in caught.value.problems
    assert ctx.model is None


def test_validation_refuses_too_little_history_for_forecasting(sample_lake):
    def shorten(tables):
        tx = tables["transactions"]
        tables["transactions"] = tx[tx["ts"] >= "2024-11-01"].reset_index(drop=True)

    snapshot_id = _broken_copy(sample_lake, shorten)
    with pytest.raises(ValidationFailed) as caught:
        run_pipeline(
            model_kind="forecasting",
            lake_root=sample_lake.root,
            artifact_root=sample_lake.artifacts,
            snapshot_id=snapshot_id,
        )
    assert caught.value.problems == [
        "transactions: 61 days of history; forecasting with a 56-day hold-out needs at least 168"
    ]


def test_validation_without_an_optional_table_trains_and_says_so(sample_lake, tmp_path):
    """No promotions table: forecasting trains without the calendar and the card says so
    (it used to refuse); recommendation, which needs products, refuses naming them."""
    tables = sample_lake.base.load(["transactions", "customers", "categories"])
    snapshot_id = write_snapshot(root=sample_lake.root, tables=tables).id
    with pytest.raises(ValidationFailed, match="needs the products table"):
        run_pipeline(
            model_kind="recommendation",
            lake_root=sample_lake.root,
            artifact_root=tmp_path,
            snapshot_id=snapshot_id,
        )
    result = run_pipeline(
        model_kind="forecasting",
        lake_root=sample_lake.root,
        artifact_root=tmp_path,
        snapshot_id=snapshot_id,
    )
    text = result.card_facts.text["training_data"]
    assert "per product (" in text and "No promotions calendar in the data" in text
    assert "promotions.discount" not in {f["name"] for f in result.card_facts.data_schema["fields"]}

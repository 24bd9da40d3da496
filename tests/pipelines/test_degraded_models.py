"""Models trained on what the client's data has: a transactions-only import (no
customers, products, categories or promotions tables, the client's own column names)."""

import pytest

from pipelines.importer import ImportSource, import_files, parse_mapping
from pipelines.steps import run_pipeline
from pipelines.validation import ValidationFailed

MAPPING = (
    "InvoiceDate=ts,CustomerID=customer_id,StockCode=product_id,Quantity=quantity,Total=amount"
)


@pytest.fixture(scope="module")
def transactions_only(sample_lake, tmp_path_factory):
    """The sample's transactions exported under the client's names, imported alone."""
    folder = tmp_path_factory.mktemp("export")
    tx = sample_lake.base.load(["transactions"])["transactions"]
    export = tx.rename(
        columns={
            "ts": "InvoiceDate",
            "customer_id": "CustomerID",
            "product_id": "StockCode",
            "quantity": "Quantity",
            "amount": "Total",
        }
    )[["InvoiceDate", "CustomerID", "StockCode", "Quantity", "Total"]]
    export = export[export["CustomerID"].notna()]
    full, bare = folder / "sales.csv", folder / "sales-no-products.csv"
    export.to_csv(full, index=False)
    export.drop(columns=["StockCode"]).to_csv(bare, index=False)
    lake = folder / "lake"
    with_products = import_files(
        root=lake,
        sources=[ImportSource("transactions", full)],
        mapping={"transactions": parse_mapping(MAPPING)},
    ).snapshot
    without_products = import_files(
        root=lake,
        sources=[ImportSource("transactions", bare)],
        mapping={"transactions": parse_mapping(MAPPING.replace("StockCode=product_id,", ""))},
    ).snapshot
    return lake, with_products, without_products, folder


def test_forecasting_on_transactions_only_forecasts_per_product(transactions_only):
    """Without categories the forecast is per product, and the card says so."""
    lake, snapshot, _, folder = transactions_only
    result = run_pipeline(
        model_kind="forecasting",
        lake_root=lake,
        artifact_root=folder / "a",
        snapshot_id=snapshot.id,
    )
    text = result.card_facts.text["training_data"]
    assert "summed to daily units per product (" in text
    assert "The data has no product categories, so the forecast is per product" in text
    assert "No promotions calendar in the data" in text
    assert result.data_version == snapshot.id
    assert result.card_facts.training_data["data_version"] == snapshot.id
    assert result.card_facts.training_data["dataset"].startswith("Import of sales.csv, snapshot")
    (entry,) = snapshot.source["files"]
    assert f"Imported from sales.csv as transactions (sha256:{entry['sha256']})." in text
    read = snapshot.source["rejections"]["tables"]["transactions"]["rows_read"]
    assert f"transactions: {read:,} rows read, {read:,} kept, 0 rejected at import." in text
    assert set(result.metric_slices) == {"product", "horizon_week"}
    names = {f["name"] for f in result.card_facts.data_schema["fields"]}
    assert names == {"transactions.ts", "transactions.product_id", "transactions.quantity"}


def test_forecasting_without_product_ids_forecasts_the_whole_store(transactions_only):
    lake, _, snapshot, folder = transactions_only
    result = run_pipeline(
        model_kind="forecasting",
        lake_root=lake,
        artifact_root=folder / "b",
        snapshot_id=snapshot.id,
    )
    assert "for the whole store" in result.card_facts.text["training_data"]
    assert list(result.metric_slices["store"]) == ["whole store"]


def test_segmentation_on_transactions_only_uses_purchase_behaviour(transactions_only):
    """No customers or categories: recency, frequency and monetary value; the card says
    consent could not be checked and the category mix was left out."""
    lake, snapshot, _, folder = transactions_only
    result = run_pipeline(
        model_kind="segmentation",
        lake_root=lake,
        artifact_root=folder / "c",
        snapshot_id=snapshot.id,
    )
    text = result.card_facts.text["training_data"]
    assert "consent could not be checked here" in text
    assert "recency, frequency and monetary value alone" in text
    assert not [f for f in result.hyperparameters["features"] if f.startswith("share_")]
    assert result.metrics["n_segments"] >= 2


def test_recommendation_without_product_ids_refuses_naming_the_column(transactions_only):
    lake, _, snapshot, folder = transactions_only
    with pytest.raises(ValidationFailed) as refused:
        run_pipeline(
            model_kind="recommendation",
            lake_root=lake,
            artifact_root=folder / "d",
            snapshot_id=snapshot.id,
        )
    assert refused.value.problems[0].startswith(
        "Product recommendation needs the column transactions.product_id, which the snapshot lacks"
    )


def test_a_card_trained_without_suppressed_customers_names_the_import(transactions_only):
    """With a customer on the suppression list the run trains on a snapshot derived from
    the import; the card's data version is the derived one (the data used), and its
    training data section names the import's snapshot it came from and what was left
    out, so the import's data version is found on the card."""
    from pipelines.suppression import customer_key, suppression_write

    lake, snapshot, _, folder = transactions_only
    tx = snapshot.load(["transactions"])["transactions"]
    customer = str(tx["customer_id"].iloc[0])
    key = b"k" * 32
    suppression_write(
        folder / "suppression.json",
        key=key,
        purposes={"training": [customer_key(key, customer)]},
        written_at="2026-11-29T00:00:00+00:00",
    )
    result = run_pipeline(
        model_kind="forecasting",
        lake_root=lake,
        artifact_root=folder / "suppressed",
        snapshot_id=snapshot.id,
        suppression_path=folder / "suppression.json",
        suppression_key=key,
    )
    assert result.data_version != snapshot.id
    removed = int((tx["customer_id"].astype(str) == customer).sum())
    text = result.card_facts.text["training_data"]
    assert (
        f"Trained on snapshot {result.data_version}, derived from snapshot {snapshot.id} "
        f"without the rows of customers on the suppression list (transactions: {removed:,})."
    ) in text


def test_segmentation_trains_on_a_uci_shaped_export_without_a_line_total(
    sample_lake, tmp_path_factory
):
    """An export shaped like the UCI Online Retail data (InvoiceNo, StockCode,
    Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country: no line total)
    imports with a mapping, with a return and a bad unit price rejected by line; amount
    is computed as quantity x unit_price, segmentation trains on it, and its card says
    amount was computed at import."""
    folder = tmp_path_factory.mktemp("uci")
    tx = sample_lake.base.load(["transactions"])["transactions"]
    tx = tx[tx["customer_id"].notna()]
    export = tx.rename(
        columns={
            "transaction_id": "InvoiceNo",
            "product_id": "StockCode",
            "quantity": "Quantity",
            "ts": "InvoiceDate",
            "unit_price": "UnitPrice",
            "customer_id": "CustomerID",
        }
    )[["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]]
    export.insert(2, "Description", "ITEM")
    export["Country"] = "United Kingdom"
    export["UnitPrice"] = export["UnitPrice"].astype(object)
    export.iloc[9, export.columns.get_loc("Quantity")] = -3  # a return, line 11
    export.iloc[19, export.columns.get_loc("UnitPrice")] = "n/a"  # line 21
    path = folder / "online_retail.csv"
    export.to_csv(path, index=False)
    snapshot = import_files(
        root=folder / "lake",
        sources=[ImportSource("transactions", path)],
        mapping={
            "transactions": parse_mapping(
                "InvoiceDate=ts,CustomerID=customer_id,StockCode=product_id,"
                "Quantity=quantity,UnitPrice=unit_price"
            )
        },
    ).snapshot
    report = snapshot.source["rejections"]["tables"]["transactions"]
    assert report["computed"] == {"amount": "quantity x unit_price"}
    assert report["rejected"]["quantity: below 1"]["sample"] == [{"line": 11, "value": -3}]
    assert report["rejected"]["unit_price: not a number"]["sample"] == [
        {"line": 21, "value": "n/a"}
    ]
    result = run_pipeline(
        model_kind="segmentation",
        lake_root=folder / "lake",
        artifact_root=folder / "artifacts",
        snapshot_id=snapshot.id,
    )
    assert result.metrics["n_segments"] >= 2
    text = result.card_facts.text["training_data"]
    assert "transactions.amount was computed at import as quantity x unit_price." in text
    assert "recency, frequency and monetary value alone" in text

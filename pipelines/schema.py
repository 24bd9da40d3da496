"""The tables of the retail data lake: columns, types, source systems, personal data
and the ranges validation holds them to.

One description serves the generator (which writes these columns), the lake (which
stores them with these Arrow types), the validate step and the model cards' data schema.
"""

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class Source(StrEnum):
    CRM = "CRM"
    ERP = "ERP"
    LOGS = "logs"


class ColumnType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"


ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.STRING: pa.large_string(),
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.DATE: pa.date32(),
    ColumnType.TIMESTAMP: pa.timestamp("us"),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str
    # Personal data under GDPR: it relates to an identified or identifiable customer
    # (a pseudonymous customer id still counts).
    personal: bool = False
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    source: Source
    description: str
    columns: tuple[Column, ...]
    key: str
    # column -> (table, column) it must reference
    references: tuple[tuple[str, str, str], ...] = ()

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in self.columns])


CUSTOMERS = Table(
    name="customers",
    source=Source.CRM,
    description="Customers of the loyalty programme, from the CRM.",
    key="customer_id",
    columns=(
        Column("customer_id", ColumnType.STRING, "Pseudonymous customer number", personal=True),
        Column("name", ColumnType.STRING, "Full name", personal=True),
        Column("email", ColumnType.STRING, "E-mail address", personal=True),
        Column("city", ColumnType.STRING, "Home city", personal=True),
        Column("region", ColumnType.STRING, "Home region", personal=True),
        Column(
            "birth_year",
            ColumnType.INTEGER,
            "Year of birth",
            personal=True,
            minimum=1900,
            maximum=2012,
        ),
        Column("signup_date", ColumnType.DATE, "Joined the loyalty programme", personal=True),
        Column(
            "consent_profiling",
            ColumnType.BOOLEAN,
            "Agreed to profiling (segmentation, recommendations)",
            personal=True,
        ),
        Column(
            "consent_marketing", ColumnType.BOOLEAN, "Agreed to marketing e-mail", personal=True
        ),
    ),
)

CATEGORIES = Table(
    name="categories",
    source=Source.ERP,
    description="Product categories, from the ERP.",
    key="category_id",
    columns=(
        Column("category_id", ColumnType.STRING, "Category code"),
        Column("category", ColumnType.STRING, "Category name"),
        Column("department", ColumnType.STRING, "Department the category belongs to"),
    ),
)

PRODUCTS = Table(
    name="products",
    source=Source.ERP,
    description="The product catalogue, from the ERP.",
    key="product_id",
    references=(("category_id", "categories", "category_id"),),
    columns=(
        Column("product_id", ColumnType.STRING, "Product code (SKU)"),
        Column("category_id", ColumnType.STRING, "Category code"),
        Column("product_name", ColumnType.STRING, "Product name"),
        Column(
            "list_price",
            ColumnType.FLOAT,
            "Shelf price before promotions, GBP",
            minimum=0.01,
            maximum=100_000,
        ),
    ),
)

PROMOTIONS = Table(
    name="promotions",
    source=Source.ERP,
    description="The promotions calendar (planned category-wide discounts), from the ERP.",
    key="promotion_id",
    references=(("category_id", "categories", "category_id"),),
    columns=(
        Column("promotion_id", ColumnType.STRING, "Promotion code"),
        Column("category_id", ColumnType.STRING, "Category on promotion"),
        Column("start_date", ColumnType.DATE, "First day of the promotion"),
        Column("end_date", ColumnType.DATE, "Last day of the promotion"),
        Column("discount", ColumnType.FLOAT, "Price reduction, 0 to 1", minimum=0, maximum=0.9),
    ),
)

TRANSACTIONS = Table(
    name="transactions",
    source=Source.LOGS,
    description="Till and web-shop transaction lines, from the sales logs.",
    key="transaction_id",
    references=(
        ("customer_id", "customers", "customer_id"),
        ("product_id", "products", "product_id"),
    ),
    columns=(
        Column("transaction_id", ColumnType.INTEGER, "Transaction line number", minimum=0),
        Column("ts", ColumnType.TIMESTAMP, "Time of sale, store local time"),
        Column("customer_id", ColumnType.STRING, "Loyalty card of the buyer", personal=True),
        Column("product_id", ColumnType.STRING, "Product sold"),
        Column("quantity", ColumnType.INTEGER, "Units sold", minimum=1, maximum=1_000),
        Column(
            "unit_price",
            ColumnType.FLOAT,
            "Price paid per unit, GBP",
            minimum=0.01,
            maximum=100_000,
        ),
        Column("amount", ColumnType.FLOAT, "Line total, GBP", minimum=0.01, maximum=10_000_000),
        Column("promotion", ColumnType.BOOLEAN, "Sold at a promotional price"),
        Column("channel", ColumnType.STRING, "Where it was sold", allowed=("store", "online")),
    ),
)

TABLES: dict[str, Table] = {
    table.name: table for table in (CUSTOMERS, CATEGORIES, PRODUCTS, PROMOTIONS, TRANSACTIONS)
}

"""Checks a snapshot's tables against the lake schema before any training: columns and
types, nulls, ranges and allowed values, unique keys, references between tables."""

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from pipelines.kinds.base import is_member
from pipelines.schema import TABLES, Column, ColumnType


class ValidationFailed(Exception):
    """The data is unfit for training; `problems` says why, one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        summary = "; ".join(self.problems[:5]) + ("; ..." if count > 5 else "")
        super().__init__(f"validation failed ({_count(count, 'problem')}): {summary}")


def _type_ok(series: pd.Series, kind: ColumnType) -> bool:
    dtype = series.dtype
    if kind is ColumnType.STRING:
        return pd.api.types.is_string_dtype(dtype) or (
            dtype == np.dtype(object) and series.dropna().map(type).eq(str).all()
        )
    if kind is ColumnType.INTEGER:
        return pd.api.types.is_integer_dtype(dtype) or (
            pd.api.types.is_float_dtype(dtype) and series.dropna().mod(1).eq(0).all()
        )
    if kind is ColumnType.FLOAT:
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind is ColumnType.BOOLEAN:
        return pd.api.types.is_bool_dtype(dtype) or (
            dtype == np.dtype(object) and series.dropna().map(type).eq(bool).all()
        )
    if kind is ColumnType.TIMESTAMP:
        return pd.api.types.is_datetime64_any_dtype(dtype)
    if kind is ColumnType.DATE:
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return True
        return (
            dtype == np.dtype(object)
            and series.dropna().map(lambda v: hasattr(v, "isoformat")).all()
        )
    return False


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _examples(values: Iterable[object], limit: int = 3) -> str:
    shown = [str(v) for v in list(values)[:limit]]
    return ", ".join(shown)


def _column_problems(table: str, column: Column, series: pd.Series) -> list[str]:
    where = f"{table}.{column.name}"
    if not _type_ok(series, column.type):
        return [f"{where}: expected {column.type.value} values, found {series.dtype}"]
    problems = []
    nulls = int(series.isna().sum())
    if nulls and not column.nullable:
        problems.append(f"{where}: {_count(nulls, 'missing value')}")
    present = series.dropna()
    if column.minimum is not None or column.maximum is not None:
        numbers = present.to_numpy(dtype=float)
        low = column.minimum if column.minimum is not None else -np.inf
        high = column.maximum if column.maximum is not None else np.inf
        outside = (numbers < low) | (numbers > high) | ~np.isfinite(numbers)
        if outside.any():
            bounds = f"[{column.minimum if column.minimum is not None else '-inf'}, "
            bounds += f"{column.maximum if column.maximum is not None else 'inf'}]"
            problems.append(
                f"{where}: {_count(int(outside.sum()), 'value')} outside "
                f"{bounds}, e.g. {_examples(numbers[outside])}"
            )
    if column.allowed:
        bad = present[~is_member(present, column.allowed)]
        if len(bad):
            problems.append(
                f"{where}: {_count(len(bad), 'value')} not in "
                f"{list(column.allowed)}, e.g. {_examples(bad.unique())}"
            )
    return problems


def validate_tables(
    tables: Mapping[str, pd.DataFrame], names: Iterable[str], *, partial: bool = False
) -> list[str]:
    """Every problem found in the named tables (empty when they are fit to use).

    With `partial`, a table may leave out columns (an import of the client's own
    export): the columns it has are checked, and the model says which it needs."""
    problems: list[str] = []
    names = list(names)
    for name in names:
        spec = TABLES[name]
        frame = tables.get(name)
        if frame is None:
            problems.append(f"{name}: table missing from the snapshot")
            continue
        if frame.empty:
            problems.append(f"{name}: no rows")
        missing = [c.name for c in spec.columns if c.name not in frame.columns]
        if missing and not partial:
            problems.append(
                f"{name}: missing column{'' if len(missing) == 1 else 's'} {', '.join(missing)}"
            )
        for column in spec.columns:
            if column.name in frame.columns:
                problems.extend(_column_problems(name, column, frame[column.name]))
        if spec.key in frame.columns:
            duplicated = int(frame[spec.key].duplicated().sum())
            if duplicated:
                problems.append(f"{name}.{spec.key}: {_count(duplicated, 'duplicate key')}")
    for name in names:
        spec, frame = TABLES[name], tables.get(name)
        if frame is None:
            continue
        for column, target_table, target_column in spec.references:
            target = tables.get(target_table)
            if target is None or column not in frame.columns or target_column not in target.columns:
                continue
            values = frame[column].dropna()
            dangling = values[~is_member(values, target[target_column].dropna())]
            if len(dangling):
                problems.append(
                    f"{name}.{column}: {_count(len(dangling), 'row')} with no matching "
                    f"{target_table}.{target_column}, e.g. {_examples(dangling.unique())}"
                )
    transactions = tables.get("transactions")
    if (
        transactions is not None
        and "transactions" in names
        and not problems
        and {"amount", "quantity", "unit_price"} <= set(transactions.columns)
    ):
        expected = transactions["quantity"] * transactions["unit_price"]
        off = (transactions["amount"] - expected).abs() > 0.01 + 1e-9 * expected.abs()
        if off.any():
            problems.append(
                f"transactions.amount: {int(off.sum())} lines differ from quantity x unit_price"
            )
    promotions = tables.get("promotions")
    if (
        promotions is not None
        and "promotions" in names
        and {"start_date", "end_date"} <= set(promotions)
    ):
        backwards = pd.to_datetime(promotions["end_date"]) < pd.to_datetime(
            promotions["start_date"]
        )
        if backwards.any():
            problems.append(f"promotions: {int(backwards.sum())} end before they start")
    return problems

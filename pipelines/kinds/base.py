"""What every model kind provides to the pipeline steps."""

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pipelines.schema import TABLES

Slices = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class InputField:
    """One lake column a model reads, and what for."""

    table: str
    column: str
    use: str  # feature, target, filter (decides which rows), key, slice
    # Whether it is personal data as this model uses it (None: as the schema says).
    # Sales lines summed per category and day identify nobody; the same lines kept
    # per customer are that customer's purchase history.
    personal: bool | None = None
    note: str = ""

    def card_row(self) -> dict[str, Any]:
        table = TABLES[self.table]
        column = table.column(self.column)
        personal = column.personal if self.personal is None else self.personal
        description = f"{column.description} ({self.use})"
        if self.note:
            description = f"{description}; {self.note}"
        return {
            "name": f"{self.table}.{self.column}",
            "type": column.type.value,
            "source": table.source.value,
            "personal_data": personal,
            "description": description,
        }


@dataclass(frozen=True)
class ComparisonRule:
    """How a new version is judged against the one in production."""

    metric: str
    higher_is_better: bool
    guard: str  # the condition the new version must meet on its own
    description: str


@dataclass
class Settings:
    hyperparameters: dict[str, Any]
    evaluation: dict[str, Any]


@dataclass
class Evaluation:
    metrics: dict[str, float]
    slices: Slices
    # The hold-out data: period_start, period_end, row_count and a sentence.
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # Markdown paragraphs for the card


def finite(value: float) -> float:
    """A metric value as a plain float; NaN or infinity means a bug upstream."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("metric is not a finite number")
    return value


def date_text(value: Any) -> str:
    return pd.Timestamp(value).date().isoformat()


class ModelKindPipeline(ABC):
    """The kind-specific half of a pipeline: features, training and evaluation."""

    kind: ClassVar[str]
    title: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    hyperparameter_defaults: ClassVar[dict[str, Any]]
    evaluation_defaults: ClassVar[dict[str, Any]]
    input_fields: ClassVar[tuple[InputField, ...]]
    comparison: ClassVar[ComparisonRule]
    # (table, column) the model cannot train without; every other input is used when
    # the snapshot has it, and the card says what was left out.
    required: ClassVar[tuple[tuple[str, str], ...]] = (("transactions", "ts"),)

    def missing_inputs(self, tables: Mapping[str, pd.DataFrame]) -> list[str]:
        """Why the data cannot train this model at all: each required table or column
        the snapshot lacks, by name."""
        problems = []
        for table, column in self.required:
            frame = tables.get(table)
            if frame is None:
                problem = f"{self.title} needs the {table} table, which the snapshot lacks"
            elif column not in frame.columns:
                problem = (
                    f"{self.title} needs the column {table}.{column}, which the snapshot "
                    f"lacks (it has {', '.join(frame.columns)})"
                )
            else:
                continue
            if problem not in problems:
                problems.append(problem)
        return problems

    def settings(self, params: Mapping[str, Any] | None) -> Settings:
        """Split run parameters into hyperparameters and evaluation settings; unknown
        names are refused so a typo does not silently train with defaults."""
        params = dict(params or {})
        unknown = sorted(
            set(params) - set(self.hyperparameter_defaults) - set(self.evaluation_defaults)
        )
        if unknown:
            known = sorted({*self.hyperparameter_defaults, *self.evaluation_defaults})
            raise ValueError(f"unknown parameters for {self.kind}: {unknown}; known: {known}")
        hyper = {k: params.get(k, v) for k, v in self.hyperparameter_defaults.items()}
        evaluation = {k: params.get(k, v) for k, v in self.evaluation_defaults.items()}
        return Settings(hyperparameters=hyper, evaluation=evaluation)

    def card_schema(self, tables: Mapping[str, pd.DataFrame] | None = None) -> dict[str, Any]:
        """The card's data schema: the inputs the model reads (of those in `tables`)."""
        fields = [
            f
            for f in self.input_fields
            if tables is None or (f.table in tables and f.column in tables[f.table].columns)
        ]
        return {"fields": [f.card_row() for f in fields]}

    @abstractmethod
    def check(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> list[str]:
        """Problems that make the data unfit for this model (beyond the schema)."""

    @abstractmethod
    def features(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> Any:
        """Everything training and evaluation need, split into training and hold-out."""

    @abstractmethod
    def train(self, features: Any, settings: Settings, seed: int) -> tuple[Any, dict[str, Any]]:
        """The fitted model and the hyperparameters as actually used (e.g. a chosen k)."""

    @abstractmethod
    def evaluate(self, model: Any, features: Any, settings: Settings) -> Evaluation:
        """Metrics and slices on the hold-out data."""

    @abstractmethod
    def training_data(self, features: Any) -> dict[str, Any]:
        """period_start, period_end, row_count of the training data, and a sentence."""


def is_member(values: pd.Series, allowed: Iterable[Any]) -> np.ndarray:
    """values.isin(allowed) as a boolean array; pandas' own isin on Arrow strings is
    orders of magnitude slower on a million rows."""
    if not isinstance(allowed, pd.Series | pd.Index | np.ndarray):
        allowed = list(allowed)
    index = pd.Index(pd.unique(pd.Series(allowed)))
    return index.get_indexer(values) >= 0


def compute_threads() -> threadpool_limits:
    """Cap the native thread pools (OpenMP, BLAS) of training and evaluation.

    The data here is small enough that one thread is fast, while OpenMP's busy-waiting
    threads on a worker that already runs other tasks made training ten times slower
    in our measurements. PIPELINE_THREADS raises the cap on a dedicated machine.
    """
    raw = os.environ.get("PIPELINE_THREADS", "1")
    try:
        threads = max(1, int(raw))
    except ValueError:
        raise ValueError(f"PIPELINE_THREADS must be a whole number, not {raw!r}") from None
    return threadpool_limits(limits=threads)


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """An evaluation setting that must be an int in [low, high] (a bool is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return value


def span_days(ts: pd.Series) -> int:
    """Calendar days from the first to the last timestamp, both included."""
    return (ts.max().normalize() - ts.min().normalize()).days + 1 if len(ts) else 0

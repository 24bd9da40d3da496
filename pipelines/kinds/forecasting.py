"""Demand forecasting: daily units sold per product category.

One gradient-boosted model (Poisson loss) for all categories. Its inputs are known when
the forecast is made: the retail calendar, the planned promotions, and the category's
own sales at least one horizon back (recent level, same weekday, same time last year),
so one model forecasts every day of the horizon directly.

Evaluated on the last `holdout_weeks` weeks against a seasonal-naive forecast (the last
week before the window, repeated).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from pipelines.kinds.base import (
    ComparisonRule,
    Evaluation,
    InputField,
    ModelKindPipeline,
    Settings,
    date_text,
    finite,
    span_days,
    whole_number,
)
from pipelines.retail_calendar import calendar_features

CALENDAR_COLUMNS = [
    "day_of_week",
    "day_of_year",
    "month",
    "year_sin",
    "year_cos",
    "bank_holiday",
    "closed",
    "black_friday",
    "easter_weekend",
    "days_to_christmas",
]
LAG_COLUMNS = ["level_28", "same_weekday_4", "last_year_7", "last_year"]
FEATURES = ["category", "discount", *CALENDAR_COLUMNS, *LAG_COLUMNS]


MAX_SERIES_CODES = 250
NO_PROMOTIONS = "No promotions calendar in the data: planned discounts are not used. "
LEVEL_NOTES = {
    "category": "",
    "product": (
        "The data has no product categories, so the forecast is per product, the "
        "level the data has. "
    ),
    "store": (
        "The data has neither categories nor product ids, so the forecast is for the "
        "whole store, the level the data has. "
    ),
}


def _level(tables: Mapping[str, pd.DataFrame]) -> str:
    tx = tables["transactions"]
    if "product_id" not in tx.columns:
        return "store"
    products, categories = tables.get("products"), tables.get("categories")
    if (
        products is not None
        and categories is not None
        and {"product_id", "category_id"} <= set(products.columns)
        and {"category_id", "category"} <= set(categories.columns)
    ):
        return "category"
    return "product"


def _series_text(level: str, count: int) -> str:
    if level == "store":
        return "for the whole store"
    plural = "categories" if level == "category" else "products"
    return f"per {level} ({count} {plural})"


@dataclass
class DemandPanel:
    """Daily units and planned discount per category, training and hold-out."""

    units: pd.DataFrame  # dates x category_id
    discount: pd.DataFrame  # dates x category_id
    category_names: dict[str, str]
    holdout_start: pd.Timestamp
    training_lines: int
    holdout_lines: int
    # The level the data allows: category (products and categories in the snapshot),
    # product (transactions with product ids only) or store (neither).
    level: str = "category"
    promotions: bool = True


class DemandForecaster:
    """The fitted model: forecasts units per category and day from a demand panel."""

    def __init__(
        self, estimator: HistGradientBoostingRegressor, categories: list[str], horizon_days: int
    ) -> None:
        self.estimator = estimator
        self.categories = categories
        self.horizon_days = horizon_days
        # Stores are shut on Christmas Day: once a year is too rare for the trees to
        # learn, so those days get the web-shop's usual share of the recent level.
        self.closed_ratio = 0.05

    def fit(self, design: pd.DataFrame) -> None:
        closed = design[(design["closed"] == 1) & (design["level_28"] > 0)]
        if len(closed):
            self.closed_ratio = float(closed["units"].sum() / closed["level_28"].sum())
        self.estimator.fit(design[FEATURES], design["units"])

    def design(self, units: pd.DataFrame, discount: pd.DataFrame) -> pd.DataFrame:
        """One row per (date, category): the model's inputs, every lag at least one
        horizon old."""
        h = self.horizon_days
        weekly_lag = 7 * math.ceil(h / 7)
        lags = {
            "level_28": units.rolling(28, min_periods=28).mean().shift(h),
            "same_weekday_4": sum(units.shift(weekly_lag + 7 * n) for n in range(4)) / 4,
            "last_year_7": units.rolling(7, center=True, min_periods=7).mean().shift(364),
            "last_year": units.shift(364),
        }
        calendar = calendar_features(units.index)
        frames = []
        codes = {c: n for n, c in enumerate(self.categories)}
        for category_id in units.columns:
            frame = calendar[CALENDAR_COLUMNS].astype(float).copy()
            frame.insert(0, "discount", discount[category_id].to_numpy())
            frame.insert(0, "category", float(codes.get(category_id, np.nan)))
            for name, lagged in lags.items():
                frame[name] = lagged[category_id].to_numpy()
            frame["date"] = units.index
            frame["category_id"] = category_id
            frame["units"] = units[category_id].to_numpy()
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def predict(self, design: pd.DataFrame) -> np.ndarray:
        predicted = self.estimator.predict(design[FEATURES])
        closed = (design["closed"] == 1).to_numpy()
        level = design["level_28"].to_numpy()
        adjusted = np.where(
            np.isnan(level), predicted * self.closed_ratio, level * self.closed_ratio
        )
        return np.where(closed, adjusted, predicted)


def seasonal_naive(units: pd.DataFrame, holdout_start: pd.Timestamp) -> pd.DataFrame:
    """The last full week before `holdout_start`, repeated over the hold-out days."""
    history = units.loc[units.index < holdout_start]
    last_week = history.iloc[-7:]
    future = units.loc[units.index >= holdout_start]
    repeated = np.resize(last_week.to_numpy(), (len(future), units.shape[1])) if len(future) else []
    # np.resize cycles rows: day h of the window gets the weekday-matching day of the last week
    return pd.DataFrame(repeated, index=future.index, columns=units.columns)


def _errors(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = predicted - actual
    positive = actual > 0
    return {
        "mae": finite(np.mean(np.abs(error))),
        "rmse": finite(np.sqrt(np.mean(error**2))),
        # Days with no sales (Christmas Day) have no percentage error.
        "mape": finite(np.mean(np.abs(error[positive]) / actual[positive]))
        if positive.any()
        else 0.0,
        "wape": finite(np.abs(error).sum() / max(actual.sum(), 1e-9)),
    }


class ForecastingPipeline(ModelKindPipeline):
    kind = "forecasting"
    title = "Demand forecasting"
    tables = ("transactions", "products", "categories", "promotions")
    required = (("transactions", "ts"), ("transactions", "quantity"))
    hyperparameter_defaults = {
        "max_iter": 300,
        "learning_rate": 0.05,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
    }
    evaluation_defaults = {"holdout_weeks": 8}
    input_fields = (
        InputField("transactions", "ts", "feature", personal=False, note="summed per day"),
        InputField("transactions", "product_id", "key", personal=False),
        InputField(
            "transactions", "quantity", "target", personal=False, note="summed per category and day"
        ),
        InputField("products", "product_id", "key"),
        InputField("products", "category_id", "key"),
        InputField("categories", "category_id", "key"),
        InputField("categories", "category", "slice"),
        InputField("promotions", "category_id", "key"),
        InputField("promotions", "start_date", "feature"),
        InputField("promotions", "end_date", "feature"),
        InputField("promotions", "discount", "feature"),
    )
    comparison = ComparisonRule(
        metric="mape",
        higher_is_better=False,
        guard="mape < baseline_mape",
        description=(
            "Lower MAPE on the hold-out window is better; the new version must also beat "
            "the seasonal-naive baseline."
        ),
    )

    def _holdout_days(self, settings: Settings) -> int:
        return 7 * whole_number(settings.evaluation["holdout_weeks"], "holdout_weeks", 1, 26)

    def check(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> list[str]:
        holdout = self._holdout_days(settings)
        ts = tables["transactions"]["ts"]
        days = span_days(ts)
        needed = 2 * holdout + 28 + 28
        if days < needed:
            return [
                f"transactions: {days} days of history; forecasting with a {holdout}-day "
                f"hold-out needs at least {needed}"
            ]
        return []

    def features(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> DemandPanel:
        holdout = self._holdout_days(settings)
        tx = tables["transactions"]
        level = _level(tables)
        day = tx["ts"].dt.normalize()
        dates = pd.date_range(day.min(), day.max(), freq="D")
        if level == "category":
            products = tables["products"].set_index("product_id")["category_id"]
            categories = tables["categories"]
            category_ids = sorted(categories["category_id"])
            series = tx["product_id"].map(products)
            names = dict(zip(categories["category_id"], categories["category"], strict=True))
        elif level == "product":
            series = tx["product_id"]
            category_ids = sorted(series.dropna().unique())
            names = {}
        else:
            series = pd.Series("all", index=tx.index)
            category_ids, names = ["all"], {"all": "whole store"}
        units = (
            pd.DataFrame({"date": day, "category_id": series, "units": tx["quantity"]})
            .groupby(["date", "category_id"])["units"]
            .sum()
            .unstack("category_id")
            .reindex(index=dates, columns=category_ids)
            .fillna(0.0)
            .astype(float)
        )
        discount = pd.DataFrame(0.0, index=dates, columns=category_ids)
        promotions = tables.get("promotions") if level == "category" else None
        for row in [] if promotions is None else promotions.itertuples(index=False):
            if row.category_id in discount.columns:
                span = (discount.index >= pd.Timestamp(row.start_date)) & (
                    discount.index <= pd.Timestamp(row.end_date)
                )
                discount.loc[span, row.category_id] = np.maximum(
                    discount.loc[span, row.category_id], row.discount
                )
        holdout_start = dates[-holdout]
        in_holdout = day >= holdout_start
        return DemandPanel(
            units=units,
            discount=discount,
            category_names=names,
            holdout_start=holdout_start,
            training_lines=int((~in_holdout).sum()),
            holdout_lines=int(in_holdout.sum()),
            level=level,
            promotions=promotions is not None,
        )

    def train(
        self, features: DemandPanel, settings: Settings, seed: int
    ) -> tuple[DemandForecaster, dict[str, Any]]:
        hyper = settings.hyperparameters
        horizon = int((features.units.index >= features.holdout_start).sum())
        forecaster = DemandForecaster(
            HistGradientBoostingRegressor(
                loss="poisson",
                max_iter=hyper["max_iter"],
                learning_rate=hyper["learning_rate"],
                max_leaf_nodes=hyper["max_leaf_nodes"],
                min_samples_leaf=hyper["min_samples_leaf"],
                l2_regularization=hyper["l2_regularization"],
                categorical_features=[0],
                early_stopping=False,
                random_state=seed,
            ),
            # The trees take at most 255 categorical values: beyond that (a product-level
            # forecast of a large catalogue) the best sellers keep their own code.
            categories=list(
                features.units.sum().sort_values(ascending=False).index[:MAX_SERIES_CODES]
            ),
            horizon_days=horizon,
        )
        design = forecaster.design(features.units, features.discount)
        rows = design[(design["date"] < features.holdout_start) & design["level_28"].notna()]
        forecaster.fit(rows)
        used = {
            **hyper,
            "horizon_days": horizon,
            "loss": "poisson",
            "features": FEATURES,
            "closed_day_ratio": round(forecaster.closed_ratio, 4),
        }
        return forecaster, used

    def evaluate(
        self, model: DemandForecaster, features: DemandPanel, settings: Settings
    ) -> Evaluation:
        start = features.holdout_start
        days = int((features.units.index >= start).sum())
        if days > model.horizon_days:
            raise ValueError(
                f"the model forecasts {model.horizon_days} days ahead; it cannot be "
                f"evaluated on a {days}-day window"
            )
        design = model.design(features.units, features.discount)
        window = design[design["date"] >= start].copy()
        window["forecast"] = model.predict(window)
        naive = seasonal_naive(features.units, start).stack().rename("baseline")
        window = window.join(naive, on=["date", "category_id"])
        window["horizon_week"] = ((window["date"] - start).dt.days // 7 + 1).astype(int)

        def scores(part: pd.DataFrame) -> dict[str, float]:
            actual = part["units"].to_numpy()
            model_errors = _errors(actual, part["forecast"].to_numpy())
            baseline_errors = _errors(actual, part["baseline"].to_numpy())
            return {**model_errors, **{f"baseline_{k}": v for k, v in baseline_errors.items()}}

        metrics = scores(window)
        slices = {
            features.level: {
                features.category_names.get(cid, cid): scores(part)
                for cid, part in window.groupby("category_id", sort=True)
            },
            "horizon_week": {
                str(week): scores(part) for week, part in window.groupby("horizon_week", sort=True)
            },
        }
        end = features.units.index[-1]
        n_series = features.units.shape[1]
        data = {
            "dataset": f"Daily units per {features.level}, hold-out window",
            "period_start": date_text(start),
            "period_end": date_text(end),
            "row_count": len(window),
            "text": (
                f"The last {days} days ({date_text(start)} to {date_text(end)}) of daily units "
                f"sold {_series_text(features.level, n_series)}, {len(window)} "
                f"{features.level}-days from "
                f"{features.holdout_lines} transaction lines, never seen in training. "
                "Compared with a seasonal-naive forecast (the last week before the window, "
                "repeated). MAPE leaves out days without sales."
            ),
        }
        return Evaluation(metrics=metrics, slices=slices, data=data)

    def training_data(self, features: DemandPanel) -> dict[str, Any]:
        first = features.units.index[0]
        last = features.holdout_start - pd.Timedelta(days=1)
        return {
            "period_start": date_text(first),
            "period_end": date_text(last),
            "row_count": features.training_lines,
            "text": (
                f"{features.training_lines} transaction lines from {date_text(first)} to "
                f"{date_text(last)}, summed to daily units "
                f"{_series_text(features.level, features.units.shape[1])}"
                f"{', with the promotions calendar' if features.promotions else ''}. "
                f"{LEVEL_NOTES[features.level]}"
                f"{'' if features.promotions else NO_PROMOTIONS}"
                "No customer-level data is used."
            ),
        }

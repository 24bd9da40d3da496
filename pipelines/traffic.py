"""Realistic prediction requests, and the outcomes that answer them, from a lake snapshot.

The traffic simulator (`manage.py simulate_traffic`) sends these to the model server;
the portal's quality jobs later join the server's prediction log with the outcomes by
request id. Each case is one request body and the ground truth the sample data holds
for it:

- forecasting: a category and a start date with four weeks of history before it, with the
  lags the model takes (mean of the last 28 days, same weekday over four weeks, last
  year's week and day) and the planned discount; the truth is the category's units on
  each of the 7 days from the start date.
- recommendation: a customer and a cut-off date, their last purchases before it (with
  their age in days); the truth is what they bought in the 28 days after it, with the
  revenue of each product.
- segmentation: one customer's behaviour (recency, frequency, spend, shares) as the
  training pipeline describes customers; segments have no later truth.

`drifted(kind, body)` shifts a request's inputs the way a changed business would (dearer
baskets, deeper discounts, lapsed customers), for the drift scenario.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.kinds import kind_for

OUTCOME_DAYS = 28  # a recommendation's purchases are counted over the next four weeks
FORECAST_DAYS = 7
HISTORY_ITEMS = 20
LAST_DAYS = 90  # forecasts and cut-offs are drawn from the snapshot's last 90 days


@dataclass
class Case:
    """One request and its ground truth (None for segmentation)."""

    body: dict[str, Any]
    actual: Any = None


@dataclass
class Cases:
    by_kind: dict[str, list[Case]] = field(default_factory=dict)


def _round(value: float) -> float:
    return round(float(value), 4)


def forecast_cases(tables: Mapping[str, pd.DataFrame], *, limit: int, seed: int) -> list[Case]:
    """Up to `limit` forecast requests with the actual daily units of their week."""
    rng = np.random.default_rng(seed)
    tx = tables["transactions"]
    category_of = tables["products"].set_index("product_id")["category_id"]
    day = tx["ts"].dt.normalize()
    dates = pd.date_range(day.min(), day.max(), freq="D")
    category_ids = sorted(tables["categories"]["category_id"])
    units = (
        pd.DataFrame(
            {"date": day, "category_id": tx["product_id"].map(category_of), "q": tx["quantity"]}
        )
        .groupby(["date", "category_id"])["q"]
        .sum()
        .unstack("category_id")
        .reindex(index=dates, columns=category_ids)
        .fillna(0.0)
    )
    discount = pd.DataFrame(0.0, index=dates, columns=category_ids)
    for row in tables["promotions"].itertuples(index=False):
        if row.category_id in discount.columns:
            span = (dates >= pd.Timestamp(row.start_date)) & (dates <= pd.Timestamp(row.end_date))
            discount.loc[span, row.category_id] = np.maximum(
                discount.loc[span, row.category_id], row.discount
            )
    values = units.to_numpy()
    last_start = len(dates) - FORECAST_DAYS
    # Any day with four weeks of history before it: the served levels then follow the
    # training data's own distribution (the drift reference), season by season.
    first_start = 28
    cases = []
    for _ in range(limit):
        start = int(rng.integers(first_start, last_start + 1))
        column = int(rng.integers(len(category_ids)))
        series = values[:, column]
        body: dict[str, Any] = {
            "category_id": category_ids[column],
            "start_date": dates[start].date().isoformat(),
            "weeks": 1,
            "level_28": _round(series[start - 28 : start].mean()),
            "same_weekday_4": _round(np.mean([series[start - 7 * n] for n in range(1, 5)])),
            "discount": _round(discount.iloc[start, column]),
        }
        if start >= 367:
            body["last_year_7"] = _round(series[start - 367 : start - 360].mean())
            body["last_year"] = _round(series[start - 364])
        actual = [
            {"date": dates[start + n].date().isoformat(), "units": float(series[start + n])}
            for n in range(FORECAST_DAYS)
        ]
        cases.append(Case(body=body, actual=actual))
    return cases


def recommendation_cases(
    tables: Mapping[str, pd.DataFrame], *, limit: int, seed: int
) -> list[Case]:
    """Up to `limit` requests: a customer's recent purchases before a cut-off, and what
    they bought (with revenue per product) in the 28 days after it."""
    rng = np.random.default_rng(seed)
    tx = tables["transactions"][["customer_id", "product_id", "ts", "amount"]]
    end = tx["ts"].max().normalize()
    cutoffs = pd.date_range(
        end - pd.Timedelta(days=LAST_DAYS), end - pd.Timedelta(days=OUTCOME_DAYS), freq="7D"
    )
    cases: list[Case] = []
    per_cutoff = max(1, limit // max(len(cutoffs), 1))
    for cutoff in cutoffs:
        before = tx[tx["ts"] < cutoff]
        after = tx[(tx["ts"] >= cutoff) & (tx["ts"] < cutoff + pd.Timedelta(days=OUTCOME_DAYS))]
        buyers = np.intersect1d(after["customer_id"].unique(), before["customer_id"].unique())
        if not len(buyers):
            continue
        chosen = rng.choice(buyers, size=min(per_cutoff, len(buyers)), replace=False)
        history = before[before["customer_id"].isin(chosen)].sort_values("ts")
        bought = after[after["customer_id"].isin(chosen)]
        revenue = bought.groupby(["customer_id", "product_id"])["amount"].sum()
        for customer_id, lines in history.groupby("customer_id"):
            recent = lines.tail(HISTORY_ITEMS)
            ages = (cutoff - recent["ts"]).dt.total_seconds() / 86_400
            spent = revenue.loc[customer_id]
            cases.append(
                Case(
                    body={
                        "customer_id": str(customer_id),
                        "k": 10,
                        "history": [
                            {"product_id": str(p), "age_days": _round(a)}
                            for p, a in zip(recent["product_id"], ages, strict=True)
                        ],
                    },
                    actual={
                        "purchased": sorted(str(p) for p in spent.index),
                        "revenue": {str(p): round(float(v), 2) for p, v in spent.items()},
                    },
                )
            )
    order = rng.permutation(len(cases))
    return [cases[i] for i in order[:limit]]


def segmentation_cases(tables: Mapping[str, pd.DataFrame], *, limit: int, seed: int) -> list[Case]:
    """Up to `limit` requests describing customers as the segmentation pipeline does."""
    kind = kind_for("segmentation")
    behaviour = kind.features(tables, kind.settings(None))
    frame = behaviour.frame
    columns = [
        "recency_days",
        "frequency",
        "monetary",
        "visit_value",
        "unit_value",
        "promotion_share",
        "online_share",
        "weekend_share",
        *behaviour.mix_columns,
    ]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(frame), size=min(limit, len(frame)), replace=False)
    cases = []
    for position in picks:
        row = frame.iloc[int(position)]
        features = {c: _round(np.nan_to_num(row[c])) for c in columns}
        cases.append(Case(body={"customer_id": str(frame.index[position]), "features": features}))
    return cases


def traffic_cases(
    tables: Mapping[str, pd.DataFrame], *, kinds: list[str], limit: int = 2000, seed: int = 0
) -> Cases:
    """The cases of each kind in `kinds` (forecasting, segmentation, recommendation)."""
    makers = {
        "forecasting": forecast_cases,
        "segmentation": segmentation_cases,
        "recommendation": recommendation_cases,
    }
    return Cases(by_kind={k: makers[k](tables, limit=limit, seed=seed) for k in kinds})


BROWSE_SHARE = 0.05  # recommended items clicked without a later purchase


def recommendation_outcome(actual: dict[str, Any], items: list[str], draws: Any) -> dict[str, Any]:
    """A recommendation's outcome once its items are known: the truth's purchases and
    revenue, and the clicks: recommended items the customer bought later, and a few
    (BROWSE_SHARE, by `draws` in [0, 1) per item) browsed without buying."""
    bought = set(actual["purchased"])
    clicked = [
        item
        for item, draw in zip(items, draws, strict=False)
        if item in bought or draw < BROWSE_SHARE
    ]
    return {"clicked": clicked, **actual}


def drifted(kind: str, body: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """The request as it would look after the business changed: for forecasts a level
    1.8 to 2.4 times higher under deep discounts, for segments customers who spend
    twice as much per visit and come back later, for recommendations a thin history."""
    out = {**body}
    if kind == "forecasting":
        out["level_28"] = _round(body["level_28"] * rng.uniform(1.8, 2.4))
        out["discount"] = _round(min(1.0, body.get("discount", 0.0) + rng.uniform(0.2, 0.4)))
    elif kind == "segmentation":
        features = {**body["features"]}
        for name in ("monetary", "visit_value", "unit_value"):
            features[name] = _round(features[name] * rng.uniform(1.8, 2.6))
        features["recency_days"] = _round(features["recency_days"] * 3 + 30)
        features["online_share"] = _round(min(1.0, features["online_share"] + 0.4))
        out["features"] = features
    else:
        out["history"] = body["history"][:1]
    return out

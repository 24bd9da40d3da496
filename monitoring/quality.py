"""Quality of served predictions once the ground truth is in: the figures the
catalogue's accuracy panels read (`portal_model_quality{metric=...}`).

- forecasting: MAE, MAPE and RMSE of the forecast daily units against the actual
  units of the same days (MAPE over days that sold something: a day with no sales
  has no percentage error);
- recommendation: hit rate@10 (share of requests with a recommended item bought
  later), click-through rate (clicked recommended items per recommended item) and
  revenue uplift (revenue of recommended items bought, less that of the window's most
  bought items had they been recommended instead, per unit of the revenue bought);
- segmentation: the silhouette of the served customers under the segments they were
  given, on log-scaled spend and standardised shares (segments have no later truth).

Fewer than MIN_JOINED joined predictions give None ("not enough data"), never a figure.
The statistics are scikit-learn's.
"""

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

MIN_JOINED = 30
SILHOUETTE_SAMPLE = 2000
SKEWED = ("recency_days", "frequency", "monetary", "visit_value", "unit_value")
SHARES = ("promotion_share", "online_share", "weekend_share")

FORECASTING_METRICS = ("mae", "mape", "rmse")
RECOMMENDATION_METRICS = ("hit_rate_at_10", "click_through_rate", "revenue_uplift")
SEGMENTATION_METRICS = ("silhouette",)


def forecasting_quality(joined: Sequence[tuple[Any, Any]]) -> dict[str, float | None]:
    """`joined`: (prediction, actual) per request, the prediction `{"forecast": [{"date",
    "units"}]}` and the actual `[{"date", "units"}]`; days are matched by date."""
    from sklearn.metrics import (  # -- slow
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
    )

    predicted, actual = [], []
    for prediction, truth in joined:
        try:
            forecast = {d["date"]: float(d["units"]) for d in prediction["forecast"]}
            for day in truth:
                if day["date"] in forecast:
                    predicted.append(forecast[day["date"]])
                    actual.append(float(day["units"]))
        except (KeyError, TypeError, ValueError):
            continue
    if len(joined) < MIN_JOINED or not actual:
        return dict.fromkeys(FORECASTING_METRICS)
    y_true, y_pred = np.asarray(actual), np.asarray(predicted)
    sold = y_true > 0
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "mape": (
            float(mean_absolute_percentage_error(y_true[sold], y_pred[sold]))
            if sold.any()
            else None
        ),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
    }


def recommendation_quality(
    joined: Sequence[tuple[Any, Any]], *, k: int = 10
) -> dict[str, float | None]:
    """`joined`: (prediction, actual) per request, the prediction `{"items": [...]}` and
    the actual `{"clicked": [...], "purchased": [...], "revenue": {item: amount}}`."""
    rows = []
    for prediction, truth in joined:
        try:
            items = [str(i) for i in prediction["items"]][:k]
            purchased = {str(i) for i in truth["purchased"]}
            clicked = {str(i) for i in truth.get("clicked", ())}
            revenue = {str(i): float(v) for i, v in (truth.get("revenue") or {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        rows.append((items, purchased, clicked, revenue))
    if len(rows) < MIN_JOINED:
        return dict.fromkeys(RECOMMENDATION_METRICS)
    popular = [
        item for item, _ in Counter(i for _, bought, _, _ in rows for i in bought).most_common(k)
    ]
    hits = sum(1 for items, bought, _, _ in rows if bought.intersection(items))
    shown = sum(len(items) for items, _, _, _ in rows)
    clicks = sum(len(clicked.intersection(items)) for items, _, clicked, _ in rows)
    total = sum(sum(revenue.values()) for *_, revenue in rows)
    from_model = sum(sum(revenue.get(i, 0.0) for i in set(items)) for items, *_, revenue in rows)
    from_popular = sum(sum(revenue.get(i, 0.0) for i in popular) for *_, revenue in rows)
    return {
        "hit_rate_at_10": hits / len(rows),
        "click_through_rate": clicks / shown if shown else None,
        "revenue_uplift": (from_model - from_popular) / total if total > 0 else None,
    }


def segmentation_quality(
    features: Sequence[dict[str, float]], segments: Sequence[int]
) -> dict[str, float | None]:
    """Silhouette of the served customers (`features`, the logged behaviour) under the
    `segments` they were given; None with fewer than MIN_JOINED or a single segment."""
    from sklearn.metrics import silhouette_score  # -- slow
    from sklearn.preprocessing import StandardScaler  # -- slow

    if len(features) < MIN_JOINED or len(set(segments)) < 2:
        return dict.fromkeys(SEGMENTATION_METRICS)
    matrix = np.array(
        [
            [np.log1p(max(row[n], 0.0)) for n in SKEWED] + [row[n] for n in SHARES]
            for row in features
        ]
    )
    scaled = StandardScaler().fit_transform(matrix)
    size = min(len(scaled), SILHOUETTE_SAMPLE)
    return {
        "silhouette": float(
            silhouette_score(scaled, np.asarray(segments), sample_size=size, random_state=0)
        )
    }

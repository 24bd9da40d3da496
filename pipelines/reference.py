"""The training reference of drift monitoring: what the model server will observe of
each input feature (and of segments, the predictions), as seen in the training data.

One sample per feature, at most REFERENCE_SIZE values drawn without replacement (a
seeded draw, so the same training run gives the same reference), in the units the
server's `serving_input_feature` histogram uses:

- forecasting: `level_28` (mean daily units over the previous 28 days, per category
  and day of the training period) and `discount` (the planned discount of that day);
- segmentation: the eight behaviour features of each training customer, and
  `prediction` (the segment the fitted model assigns each of them);
- recommendation: `history_length` (how many recent purchases a request carries: the
  customer's purchases before the cut-off, capped at the HISTORY_ITEMS a client sends).

The portal stores it with the version at registration and scores serving windows
against it (PSI, Jensen-Shannon, normed Wasserstein, KL).
"""

from typing import Any

import numpy as np

REFERENCE_SIZE = 2000
HISTORY_ITEMS = 20
SEGMENT_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "visit_value",
    "unit_value",
    "promotion_share",
    "online_share",
    "weekend_share",
)


def _sample(values: Any, rng: np.random.Generator) -> list[float]:
    array = np.asarray(values, dtype=float).ravel()
    array = array[np.isfinite(array)]
    if len(array) > REFERENCE_SIZE:
        array = rng.choice(array, size=REFERENCE_SIZE, replace=False)
    return [round(float(v), 6) for v in array]


def serving_reference(*, kind: str, features: Any, model: Any, seed: int = 0) -> dict[str, list]:
    """The reference samples of `kind` from its training `features` and fitted `model`;
    an empty dict for a kind it does not know."""
    rng = np.random.default_rng(seed)
    if kind == "forecasting":
        training = features.units.index < features.holdout_start
        units = features.units.loc[training]
        level = units.rolling(28, min_periods=28).mean()
        return {
            "level_28": _sample(level.to_numpy(), rng),
            "discount": _sample(features.discount.loc[training].to_numpy(), rng),
        }
    if kind == "segmentation":
        frame = features.frame
        frame = frame[~frame["holdout"].to_numpy(dtype=bool)]
        reference = {name: _sample(frame[name].to_numpy(), rng) for name in SEGMENT_FEATURES}
        reference["prediction"] = _sample(model.assign(frame), rng)
        return reference
    if kind == "recommendation":
        lengths = features.history.groupby("customer_id").size().clip(upper=HISTORY_ITEMS)
        return {"history_length": _sample(lengths.to_numpy(), rng)}
    return {}

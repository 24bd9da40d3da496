"""What each model kind takes, how it predicts, and what the server measures of it.

The fitted objects are the ones the training pipelines write (`pipelines.artifacts`):
`DemandForecaster`, `CustomerSegmenter`, `ItemRecommender`. A request's fields are
checked by pydantic first (422 naming the field); what only the model knows (a category
it never saw) raises `InputError` naming the field.
"""

import math
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from pipelines.artifacts import load_artifact
from pipelines.retail_calendar import calendar_features

# The segment a customer on the suppression list is given: no segment of the model's.
DEFAULT_SEGMENT = -1


class InputError(ValueError):
    """A request the model cannot answer; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# Every request model refuses NaN and infinity (JSON's NaN/Infinity extensions, or a
# number beyond a float): a non-finite input has no prediction, would be observed into
# the drift histograms as +Inf and written to the prediction log as non-standard JSON.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
MAX_WEEKS = 4
# The forecast's last day must exist in the calendar (a start in December 9999 would
# run past date.max and fail inside the model rather than as a field error).
LAST_START_DATE = date.max - timedelta(weeks=MAX_WEEKS)


class ForecastRequest(BaseModel):
    """Units per day for one category (and store, the sticky key) from a start date."""

    model_config = STRICT
    category_id: str = Field(min_length=1, max_length=64)
    store_id: str | None = Field(default=None, max_length=64)
    start_date: date = Field(le=LAST_START_DATE)
    weeks: int = Field(default=1, ge=1, le=MAX_WEEKS)
    level_28: float = Field(ge=0, description="mean daily units over the last 28 days")
    same_weekday_4: float | None = Field(default=None, ge=0)
    last_year_7: float | None = Field(default=None, ge=0)
    last_year: float | None = Field(default=None, ge=0)
    discount: float = Field(default=0.0, ge=0, le=1)

    def key(self) -> str:
        return f"{self.category_id}/{self.store_id or ''}"


class CustomerFeatures(BaseModel):
    # Department spend shares come as extra fields, by column name.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    recency_days: float = Field(ge=0)
    frequency: float = Field(ge=0)
    monetary: float = Field(ge=0)
    visit_value: float = Field(ge=0)
    unit_value: float = Field(ge=0)
    promotion_share: float = Field(ge=0, le=1)
    online_share: float = Field(ge=0, le=1)
    weekend_share: float = Field(ge=0, le=1)


class SegmentRequest(BaseModel):
    model_config = STRICT
    customer_id: str | None = Field(default=None, max_length=64)
    features: CustomerFeatures

    def key(self) -> str | None:
        return self.customer_id


class Purchase(BaseModel):
    model_config = STRICT
    product_id: str = Field(min_length=1, max_length=64)
    age_days: float = Field(default=0.0, ge=0)


class RecommendRequest(BaseModel):
    model_config = STRICT
    customer_id: str = Field(min_length=1, max_length=64)
    k: int = Field(default=10, ge=1, le=100)
    history: list[Purchase] = Field(default_factory=list, max_length=1000)

    def key(self) -> str:
        return self.customer_id


@dataclass
class Answer:
    body: dict[str, Any]
    predictions: list[float]  # observed into the prediction histogram
    features: dict[str, float]  # observed into the input feature histograms


class Predictor:
    """A loaded version of one model."""

    kind: ClassVar[str]
    request: ClassVar[type[BaseModel]]
    feature_names: ClassVar[tuple[str, ...]]
    # The suppression list's purpose this model serves (pipelines.suppression), if it
    # profiles customers: a listed customer gets `predict_suppressed` instead.
    purpose: ClassVar[str | None] = None

    def __init__(
        self, model: Any, metadata: dict[str, Any], *, artifact: str, load_seconds: float
    ) -> None:
        self.model = model
        self.artifact = artifact
        self.metadata = metadata
        self.load_seconds = load_seconds

    def predict(self, request: Any) -> Answer:
        raise NotImplementedError

    def predict_suppressed(self, request: Any) -> Answer:
        """The answer for a customer on the suppression list: nothing about them is
        used, and nothing is observed into the monitoring histograms."""
        raise NotImplementedError


class ForecastingPredictor(Predictor):
    kind = "forecasting"
    request = ForecastRequest
    feature_names = ("level_28", "discount")

    def predict(self, request: ForecastRequest) -> Answer:
        forecaster = self.model
        if request.category_id not in forecaster.categories:
            raise InputError("category_id", f"unknown category {request.category_id!r}")
        dates = pd.date_range(pd.Timestamp(request.start_date), periods=7 * request.weeks)
        design = calendar_features(dates).reset_index(drop=True).astype(float)
        design["category"] = float(forecaster.categories.index(request.category_id))
        design["discount"] = request.discount
        for name in ("level_28", "same_weekday_4", "last_year_7", "last_year"):
            value = getattr(request, name)
            design[name] = np.nan if value is None else float(value)
        units = np.maximum(forecaster.predict(design), 0.0)
        forecast = [
            {"date": d.date().isoformat(), "units": round(float(u), 3)}
            for d, u in zip(dates, units, strict=True)
        ]
        return Answer(
            body={"category_id": request.category_id, "forecast": forecast},
            predictions=[float(units.mean())],
            features={"level_28": request.level_28, "discount": request.discount},
        )


class SegmentationPredictor(Predictor):
    kind = "segmentation"
    request = SegmentRequest
    purpose = "profiling"
    feature_names = (
        "recency_days",
        "frequency",
        "monetary",
        "visit_value",
        "unit_value",
        "promotion_share",
        "online_share",
        "weekend_share",
    )

    def predict(self, request: SegmentRequest) -> Answer:
        values = request.features.model_dump()
        for name, value in values.items():
            # Extra fields (department shares) are not checked by pydantic's types.
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InputError(f"features.{name}", "must be a number")
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer beyond any float
                finite = False
            if not finite:
                raise InputError(f"features.{name}", "must be a finite number")
        segment = int(self.model.assign(pd.DataFrame([values]))[0])
        return Answer(
            body={"customer_id": request.customer_id, "segment": segment},
            predictions=[float(segment)],
            features={name: float(values[name]) for name in self.feature_names},
        )

    def predict_suppressed(self, request: SegmentRequest) -> Answer:
        return Answer(
            body={
                "customer_id": request.customer_id,
                "segment": DEFAULT_SEGMENT,
                "personalised": False,
            },
            predictions=[],
            features={},
        )


class RecommendationPredictor(Predictor):
    kind = "recommendation"
    request = RecommendRequest
    purpose = "personalisation"
    feature_names = ("history_length",)

    def predict(self, request: RecommendRequest) -> Answer:
        recommender = self.model
        history = pd.DataFrame(
            {
                "customer_id": [request.customer_id] * len(request.history),
                "product_id": [p.product_id for p in request.history],
                "age_days": [p.age_days for p in request.history],
            }
        )
        matrix = recommender.history_matrix(history, pd.Index([request.customer_id]))
        positions = recommender.recommend(matrix, request.k)[0]
        items = [str(recommender.products[p]) for p in positions]
        # The prediction distribution: how popular the recommended items are (share of
        # the most popular product's buyers), a shift of which shows a changed ranking.
        top = max(float(recommender.popularity.max()), 1e-12)
        popularity = [float(recommender.popularity[p]) / top for p in positions]
        return Answer(
            body={"customer_id": request.customer_id, "items": items},
            predictions=popularity,
            features={"history_length": float(len(request.history))},
        )

    def predict_suppressed(self, request: RecommendRequest) -> Answer:
        """The most popular products, the same for everyone: no history is used."""
        popularity = np.asarray(self.model.popularity)
        positions = np.argsort(-popularity, kind="stable")[: request.k]
        return Answer(
            body={
                "customer_id": request.customer_id,
                "items": [str(self.model.products[p]) for p in positions],
                "personalised": False,
            },
            predictions=[],
            features={},
        )


PREDICTORS: dict[str, type[Predictor]] = {
    p.kind: p for p in (ForecastingPredictor, SegmentationPredictor, RecommendationPredictor)
}


def predictor_load(*, kind: str, artifact: str) -> Predictor:
    """Load the artifact at `artifact` (its hash checked) as a predictor of `kind`."""
    started = time.perf_counter()
    loaded = load_artifact(artifact)
    return PREDICTORS[kind](
        loaded.model,
        loaded.metadata,
        artifact=artifact,
        load_seconds=time.perf_counter() - started,
    )

"""Customer segmentation: k-means on purchasing behaviour.

Per customer who agreed to profiling: recency, frequency, monetary value, visit value,
price level, promotion, web-shop and weekend shares, and the share of spend in each
department (twelve category shares were tried: too noisy for customers with few
visits, they blur the segments). k is chosen by silhouette on the training customers
unless fixed.

Evaluated on a fifth of the customers held out by a stable hash of their id (the same
customers for every snapshot), in the model's own feature space.
"""

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_samples
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipelines.kinds.base import (
    ComparisonRule,
    Evaluation,
    InputField,
    ModelKindPipeline,
    Settings,
    date_text,
    finite,
    is_member,
)

SKEWED = ["recency_days", "frequency", "monetary", "visit_value", "unit_value"]
SHARES = ["promotion_share", "online_share", "weekend_share"]
MIN_SEGMENT_SHARE = 0.02
EVALUATION_SEED = 0


def holdout_mask(customer_ids: pd.Series | pd.Index, every: int = 5) -> np.ndarray:
    """One customer in `every`, chosen by a hash of the id: stable across snapshots."""
    return np.array([zlib.crc32(str(c).encode()) % every == 0 for c in customer_ids], dtype=bool)


@dataclass
class CustomerBehaviour:
    frame: pd.DataFrame  # one row per customer (index customer_id): features, region, holdout
    mix_columns: list[str]  # share of spend per department
    category_names: dict[str, str]  # category_id -> name
    period_start: pd.Timestamp
    period_end: pd.Timestamp
    lines: int
    excluded_without_consent: int
    # What the data lacked and the model did without, as sentences for the card.
    left_out: list[str] = field(default_factory=list)
    consent_checked: bool = True


def _customers(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
    customers = tables.get("customers")
    if customers is None or not {"customer_id", "consent_profiling"} <= set(customers.columns):
        return None
    return customers


def _category_mix(
    tables: Mapping[str, pd.DataFrame],
) -> tuple[pd.Series | None, pd.DataFrame | None]:
    """(product -> category, categories) when the data has them, else (None, None)."""
    tx, products, categories = (tables.get(n) for n in ("transactions", "products", "categories"))
    if (
        products is None
        or categories is None
        or "product_id" not in tx.columns
        or not {"product_id", "category_id"} <= set(products.columns)
        or not {"category_id", "category", "department"} <= set(categories.columns)
    ):
        return None, None
    return products.set_index("product_id")["category_id"], categories


def _consent(features: "CustomerBehaviour") -> str:
    return " with profiling consent" if features.consent_checked else ""


class CustomerSegmenter:
    """The fitted model: scaling and k-means, segments numbered by spend (0 spends most)."""

    def __init__(self, pipeline: Pipeline, feature_names: list[str], order: np.ndarray) -> None:
        self.pipeline = pipeline
        self.feature_names = feature_names
        self.order = order  # k-means cluster -> segment number

    @property
    def n_segments(self) -> int:
        return len(self.order)

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        # Categories the model has not seen are dropped; missing ones count as no spend.
        return frame.reindex(columns=self.feature_names, fill_value=0.0)

    def embed(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline[:-1].transform(self._inputs(frame))

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        return self.order[self.pipeline.predict(self._inputs(frame))]


def _transformer(mix_columns: list[str]) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("skewed", make_pipeline(FunctionTransformer(np.log1p), StandardScaler()), SKEWED),
            ("shares", StandardScaler(), SHARES + mix_columns),
        ]
    )


class SegmentationPipeline(ModelKindPipeline):
    kind = "segmentation"
    title = "Customer segmentation"
    tables = ("transactions", "customers", "products", "categories")
    required = (
        ("transactions", "customer_id"),
        ("transactions", "ts"),
        ("transactions", "amount"),
    )
    hyperparameter_defaults = {
        "n_clusters": "auto",
        "min_clusters": 4,
        "max_clusters": 7,
        "n_init": 4,
    }
    evaluation_defaults = {"silhouette_sample": 4000}
    input_fields = (
        InputField("customers", "customer_id", "key"),
        InputField(
            "customers",
            "consent_profiling",
            "filter",
            note="customers without consent are left out",
        ),
        InputField("customers", "region", "slice"),
        InputField("transactions", "customer_id", "key"),
        InputField(
            "transactions", "ts", "feature", personal=True, note="recency, frequency, weekend share"
        ),
        InputField("transactions", "amount", "feature", personal=True, note="monetary value"),
        InputField("transactions", "quantity", "feature", personal=True, note="price level"),
        InputField("transactions", "promotion", "feature", personal=True),
        InputField("transactions", "channel", "feature", personal=True),
        InputField("transactions", "product_id", "key", personal=True),
        InputField("products", "category_id", "key"),
        InputField("categories", "category_id", "key"),
        InputField("categories", "department", "feature", note="share of spend per department"),
    )
    comparison = ComparisonRule(
        metric="silhouette",
        higher_is_better=True,
        guard=f"smallest_segment_share >= {MIN_SEGMENT_SHARE}",
        description=(
            "Higher silhouette on the held-out customers is better; no segment may hold "
            f"less than {MIN_SEGMENT_SHARE:.0%} of the customers."
        ),
    )

    def check(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> list[str]:
        buyers = tables["transactions"]["customer_id"].dropna().unique()
        customers = _customers(tables)
        needed = 20 * int(settings.hyperparameters["max_clusters"])
        if customers is None:
            n = len(buyers)
            if n < needed:
                return [f"transactions: {n} customers with purchases; need at least {needed}"]
            return []
        consenting = set(customers.loc[customers["consent_profiling"], "customer_id"])
        n = len(consenting.intersection(buyers))
        if n < needed:
            return [f"customers: {n} with profiling consent and purchases; need at least {needed}"]
        return []

    def features(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> CustomerBehaviour:
        tx = tables["transactions"]
        tx = tx[tx["customer_id"].notna()]
        all_buyers = tx["customer_id"].nunique()
        left_out: list[str] = []
        customer_table = _customers(tables)
        if customer_table is not None:
            customers = customer_table.set_index("customer_id")
            consenting = customers.index[customers["consent_profiling"].to_numpy(dtype=bool)]
            tx = tx[is_member(tx["customer_id"], consenting)]
        else:
            left_out.append(
                "The data has no customers table with profiling consent: consent could not "
                "be checked here, so every buyer in the data is segmented; the export must "
                "hold only customers who agreed to profiling."
            )
        category_of, categories = _category_mix(tables)
        if categories is None:
            left_out.append(
                "The data has no product categories: customers are described by recency, "
                "frequency and monetary value alone, without their category mix."
            )
        for column, what in (
            ("quantity", "price level"),
            ("promotion", "promotion share"),
            ("channel", "online share"),
        ):
            if column not in tx.columns:
                left_out.append(f"The data has no transactions.{column}: no {what}.")
        reference = tables["transactions"]["ts"].max().normalize() + pd.Timedelta(days=1)
        day = tx["ts"].dt.normalize()
        zeros = np.zeros(len(tx))
        lines = pd.DataFrame(
            {
                "customer_id": tx["customer_id"].to_numpy(),
                "day": day.to_numpy(),
                "amount": tx["amount"].to_numpy(),
                "quantity": tx["quantity"].to_numpy() if "quantity" in tx else np.ones(len(tx)),
                "promo_amount": (
                    np.where(tx["promotion"], tx["amount"], 0.0) if "promotion" in tx else zeros
                ),
                "online": (
                    (tx["channel"] == "online").to_numpy(dtype=float) if "channel" in tx else zeros
                ),
                "weekend": (day.dt.day_of_week >= 5).to_numpy(dtype=float),
                "category_id": (
                    tx["product_id"].map(category_of).to_numpy()
                    if category_of is not None
                    else tx["product_id"].to_numpy()
                    if "product_id" in tx
                    else np.full(len(tx), "unknown")
                ),
            }
        )
        grouped = lines.groupby("customer_id", sort=True)
        frame = pd.DataFrame(
            {
                "recency_days": (reference - grouped["day"].max()).dt.days.astype(float),
                "frequency": grouped["day"].nunique().astype(float),
                "monetary": grouped["amount"].sum(),
                "quantity": grouped["quantity"].sum().astype(float),
                "promo_amount": grouped["promo_amount"].sum(),
                "online_share": grouped["online"].mean(),
                "weekend_share": grouped["weekend"].mean(),
            }
        )
        frame["visit_value"] = frame["monetary"] / frame["frequency"]
        frame["unit_value"] = frame["monetary"] / frame["quantity"]
        frame["promotion_share"] = frame["promo_amount"] / frame["monetary"]
        if categories is not None:
            department_of = categories.set_index("category_id")["department"]
            lines["department"] = lines["category_id"].map(department_of)
            departments = sorted(categories["department"].unique())
            spend = lines.pivot_table(
                index="customer_id",
                columns="department",
                values="amount",
                aggfunc="sum",
                fill_value=0.0,
            ).reindex(index=frame.index, columns=departments, fill_value=0.0)
            shares = spend.div(frame["monetary"], axis=0).add_prefix("share_")
        else:
            shares = pd.DataFrame(index=frame.index)
        top_category = (
            lines.groupby(["customer_id", "category_id"])["amount"]
            .sum()
            .unstack(fill_value=0.0)
            .idxmax(axis=1)
        )
        frame = pd.concat([frame.drop(columns=["quantity", "promo_amount"]), shares], axis=1)
        frame["top_category"] = top_category.reindex(frame.index).to_numpy()
        if customer_table is not None and "region" in customers.columns:
            frame["region"] = customers.loc[frame.index, "region"].to_numpy()
        else:
            frame["region"] = "all"
        frame["holdout"] = holdout_mask(frame.index)
        return CustomerBehaviour(
            frame=frame,
            mix_columns=list(shares.columns),
            category_names=(
                {}
                if categories is None
                else dict(zip(categories["category_id"], categories["category"], strict=True))
            ),
            period_start=tables["transactions"]["ts"].min(),
            period_end=tables["transactions"]["ts"].max(),
            lines=len(tx),
            excluded_without_consent=int(all_buyers - len(frame)),
            left_out=left_out,
            consent_checked=customer_table is not None,
        )

    def train(
        self, features: CustomerBehaviour, settings: Settings, seed: int
    ) -> tuple[CustomerSegmenter, dict[str, Any]]:
        hyper = settings.hyperparameters
        names = SKEWED + SHARES + features.mix_columns
        training = features.frame.loc[~features.frame["holdout"], names]
        transformer = _transformer(features.mix_columns).fit(training)
        x = transformer.transform(training)
        if hyper["n_clusters"] == "auto":
            candidates = range(int(hyper["min_clusters"]), int(hyper["max_clusters"]) + 1)
            rng = np.random.default_rng(seed)
            sample = rng.choice(len(x), size=min(len(x), 3000), replace=False)
            scores, balanced = {}, set()
            for k in candidates:
                labels = KMeans(k, n_init=2, random_state=seed).fit_predict(x)
                scores[k] = float(np.mean(silhouette_samples(x[sample], labels[sample])))
                if np.bincount(labels, minlength=k).min() >= MIN_SEGMENT_SHARE * len(x):
                    balanced.add(k)
            # A segment too small to act on does not pay for a better silhouette.
            k = max(balanced or scores, key=lambda c: (scores[c], -c))
        else:
            k = int(hyper["n_clusters"])
            scores = {}
        kmeans = KMeans(k, n_init=int(hyper["n_init"]), random_state=seed).fit(x)
        pipeline = Pipeline([("features", transformer), ("kmeans", kmeans)])
        spend = training["monetary"].groupby(kmeans.labels_).mean()
        order = np.empty(k, dtype=int)
        order[spend.sort_values(ascending=False).index.to_numpy()] = np.arange(k)
        used = {
            **hyper,
            "n_clusters": k,
            "n_clusters_chosen_by": "silhouette" if scores else "fixed",
            "silhouette_by_k": {str(c): round(v, 4) for c, v in scores.items()},
            "features": names,
        }
        return CustomerSegmenter(pipeline, names, order), used

    def evaluate(
        self, model: CustomerSegmenter, features: CustomerBehaviour, settings: Settings
    ) -> Evaluation:
        frame = features.frame
        segment = model.assign(frame)
        held = frame[frame["holdout"]]
        held_segment = segment[frame["holdout"].to_numpy()]
        x = model.embed(held)
        # A fixed sample, whatever the training seed: versions compared on one snapshot
        # are scored on the same customers.
        rng = np.random.default_rng(EVALUATION_SEED)
        size = min(len(held), int(settings.evaluation["silhouette_sample"]))
        sample = np.sort(rng.choice(len(held), size=size, replace=False))
        if len(np.unique(held_segment[sample])) < 2:
            raise ValueError("the held-out customers fall into a single segment")
        per_customer = silhouette_samples(x[sample], held_segment[sample])
        k = model.n_segments
        sizes = np.bincount(segment, minlength=k)
        shares = sizes / sizes.sum()
        metrics = {
            "silhouette": finite(per_customer.mean()),
            "davies_bouldin": finite(davies_bouldin_score(x, held_segment)),
            "calinski_harabasz": finite(calinski_harabasz_score(x, held_segment)),
            "n_segments": float(k),
            "smallest_segment_share": finite(shares.min()),
            "largest_segment_share": finite(shares.max()),
        }
        sampled = held.iloc[sample]
        sampled_segment = held_segment[sample]
        by_segment: dict[str, dict[str, float]] = {}
        for s in range(k):
            members = frame[segment == s]
            row = {"customers": float(sizes[s]), "share": finite(shares[s])}
            if len(members):
                row |= {
                    "recency_days": finite(members["recency_days"].mean()),
                    "frequency": finite(members["frequency"].mean()),
                    "monetary": finite(members["monetary"].mean()),
                    "promotion_share": finite(members["promotion_share"].mean()),
                    "online_share": finite(members["online_share"].mean()),
                }
            if (sampled_segment == s).any():
                row["silhouette"] = finite(per_customer[sampled_segment == s].mean())
            by_segment[str(s)] = row
        by_region: dict[str, dict[str, float]] = {}
        for region, members in frame.groupby("region", sort=True):
            seg = segment[frame.index.get_indexer(members.index)]
            row = {"customers": float(len(members))}
            row |= {f"share_segment_{s}": finite((seg == s).mean()) for s in range(k)}
            in_sample = (sampled["region"] == region).to_numpy()
            if in_sample.sum() >= 2:
                row["silhouette"] = finite(per_customer[in_sample].mean())
            by_region[str(region)] = row
        data = {
            "dataset": "Customers held out by a hash of their id",
            "period_start": date_text(features.period_start),
            "period_end": date_text(features.period_end),
            "row_count": len(held),
            "text": (
                f"{len(held)} customers{_consent(features)} (one in five, chosen by a "
                "stable hash of the customer id, never used in training), described by "
                "their purchases over the whole period; silhouette on a sample of "
                f"{size} of them, in the model's own feature space."
            ),
        }
        notes = [self._profiles(features, segment, shares)]
        return Evaluation(
            metrics=metrics,
            slices={"segment": by_segment, "region": by_region},
            data=data,
            notes=notes,
        )

    @staticmethod
    def _profiles(features: CustomerBehaviour, segment: np.ndarray, shares: np.ndarray) -> str:
        frame = features.frame
        lines = [
            "| segment | customers | days since last visit | visits | spend (GBP) "
            "| on promotion | online | most common top category |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s, share in enumerate(shares):
            members = frame[segment == s]
            if members.empty:
                continue
            top = members["top_category"].mode().iloc[0]
            lines.append(
                f"| {s} | {share:.0%} | {members['recency_days'].median():.0f} "
                f"| {members['frequency'].median():.0f} | {members['monetary'].median():.0f} "
                f"| {members['promotion_share'].mean():.0%} | {members['online_share'].mean():.0%} "
                f"| {features.category_names.get(top, top)} |"
            )
        return "Segment profiles (medians; shares are means):\n\n" + "\n".join(lines)

    def training_data(self, features: CustomerBehaviour) -> dict[str, Any]:
        n = int((~features.frame["holdout"]).sum())
        return {
            "period_start": date_text(features.period_start),
            "period_end": date_text(features.period_end),
            "row_count": n,
            "text": (
                f"{n} customers{_consent(features)} (four in five), described by "
                f"{features.lines} transaction lines from {date_text(features.period_start)} "
                f"to {date_text(features.period_end)}. "
                + (
                    f"{features.excluded_without_consent} buyers without profiling consent "
                    "were left out."
                    if features.consent_checked
                    else ""
                )
                + "".join(f" {sentence}" for sentence in features.left_out)
            ),
        }

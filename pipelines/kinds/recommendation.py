"""Product recommendation: top-k products per customer, item-based collaborative
filtering.

Two products are similar when the same customers buy both (cosine over who bought
what). A customer's recommendations score each product by its similarity to what they
bought, weighted by how recently, plus their own favourites (grocery shoppers buy the
same things again), plus a little popularity to break ties.

Evaluated on the purchases of the last `holdout_weeks` weeks by customers with earlier
purchases: hit rate@k (the share of customers who bought at least one recommended
product), precision, recall and NDCG at k, and catalogue coverage, against recommending
the k most popular products to everyone. Only customers who agreed to profiling are
used, in training and in evaluation.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.preprocessing import normalize

from pipelines.kinds.base import (
    ComparisonRule,
    Evaluation,
    InputField,
    ModelKindPipeline,
    Settings,
    date_text,
    finite,
    is_member,
    span_days,
    whole_number,
)

ACTIVITY_BANDS = ((0, 10, "light"), (10, 50, "medium"), (50, None, "heavy"))  # lines before cutoff


@dataclass
class PurchaseHistory:
    """Purchases before the cut-off (training and the customers' history at evaluation)
    and after it (held out)."""

    history: pd.DataFrame  # customer_id, product_id, age_days (days before the cut-off)
    heldout: pd.DataFrame  # customer_id, product_id (distinct pairs)
    catalogue: pd.Series  # product_id -> category_id, every product in the snapshot
    category_names: dict[str, str]
    region: pd.Series  # customer_id -> region
    cutoff: pd.Timestamp
    period_start: pd.Timestamp
    period_end: pd.Timestamp
    history_lines: int
    heldout_lines: int
    cold_customers: int  # bought in the hold-out window only: nothing to recommend from


class ItemRecommender:
    """The fitted model: product-to-product similarities and popularity."""

    def __init__(
        self,
        products: np.ndarray,
        similarity: sparse.csr_matrix,
        popularity: np.ndarray,
        history_weight: float,
        popularity_weight: float,
        half_life_days: float,
    ) -> None:
        self.products = products
        self.index = {p: n for n, p in enumerate(products)}
        self.similarity = similarity
        self.popularity = popularity
        self.history_weight = history_weight
        self.popularity_weight = popularity_weight
        self.half_life_days = half_life_days

    def history_matrix(self, history: pd.DataFrame, customers: pd.Index) -> sparse.csr_matrix:
        """customers x products: purchases weighted by recency (unknown products drop)."""
        item = history["product_id"].map(self.index)
        row = customers.get_indexer(history["customer_id"])
        keep = item.notna().to_numpy() & (row >= 0)
        weight = 0.5 ** (history["age_days"].to_numpy()[keep] / self.half_life_days)
        matrix = sparse.csr_matrix(
            (weight, (row[keep], item.to_numpy()[keep].astype(np.int64))),
            shape=(len(customers), len(self.products)),
        )
        matrix.data = np.log1p(matrix.data)
        return matrix

    def recommend(self, history: sparse.csr_matrix, k: int, batch: int = 4096) -> np.ndarray:
        """Row n: the k best product positions for customer n, best first."""
        k = min(k, len(self.products))
        prior = self.popularity_weight * self.popularity / max(self.popularity.max(), 1e-12)
        out = np.empty((history.shape[0], k), dtype=np.int64)
        for start in range(0, history.shape[0], batch):
            part = history[start : start + batch]
            scores = np.asarray((part @ self.similarity).todense()) + prior
            scores += self.history_weight * part.toarray()
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            out[start : start + batch] = np.take_along_axis(top, order, axis=1)
        return out


def _ranking_scores(
    recommended: np.ndarray, relevant: sparse.csr_matrix, k: int
) -> dict[str, np.ndarray]:
    """Per customer: hit, precision, recall and NDCG at k. `recommended` holds catalogue
    positions; `relevant` is customers x catalogue (1 where bought in the hold-out)."""
    rows = np.repeat(np.arange(recommended.shape[0]), recommended.shape[1])
    hits = np.asarray(relevant[rows, recommended.ravel()]).reshape(recommended.shape) > 0
    n_relevant = np.asarray(relevant.sum(axis=1)).ravel()
    discounts = 1.0 / np.log2(np.arange(2, recommended.shape[1] + 2))
    ideal = np.array([discounts[: min(int(n), recommended.shape[1])].sum() for n in n_relevant])
    return {
        "hit": hits.any(axis=1).astype(float),
        "precision": hits.sum(axis=1) / k,
        "recall": hits.sum(axis=1) / np.maximum(n_relevant, 1),
        "ndcg": (hits * discounts).sum(axis=1) / np.maximum(ideal, 1e-12),
        "hits": hits,
    }


class RecommendationPipeline(ModelKindPipeline):
    kind = "recommendation"
    title = "Product recommendation"
    tables = ("transactions", "customers", "products", "categories")
    # Recommending products needs who bought which product, and the catalogue; without
    # them there is nothing honest to fall back on.
    required = (
        ("transactions", "customer_id"),
        ("transactions", "product_id"),
        ("transactions", "ts"),
        ("customers", "customer_id"),
        ("customers", "consent_profiling"),
        ("customers", "region"),
        ("products", "product_id"),
        ("products", "category_id"),
        ("categories", "category_id"),
        ("categories", "category"),
    )
    hyperparameter_defaults = {
        "n_neighbours": 50,
        "history_weight": 3.0,
        "popularity_weight": 0.05,
        "half_life_days": 180.0,
    }
    evaluation_defaults = {"k": 10, "holdout_weeks": 4}
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
            "transactions", "product_id", "feature", personal=True, note="what the customer bought"
        ),
        InputField("transactions", "ts", "feature", personal=True, note="how recently"),
        InputField("products", "product_id", "key"),
        InputField("products", "category_id", "slice"),
        InputField("categories", "category", "slice"),
    )
    comparison = ComparisonRule(
        metric="hit_rate_at_k",
        higher_is_better=True,
        guard="hit_rate_at_k > baseline_hit_rate_at_k",
        description=(
            "Higher hit rate@k on the held-out purchases is better; the new version must "
            "also beat the popularity baseline."
        ),
    )

    def _holdout_days(self, settings: Settings) -> int:
        whole_number(settings.evaluation["k"], "k", 1, 100)
        return 7 * whole_number(settings.evaluation["holdout_weeks"], "holdout_weeks", 1, 26)

    def check(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> list[str]:
        holdout = self._holdout_days(settings)
        ts = tables["transactions"]["ts"]
        days = span_days(ts)
        problems = []
        if days < 3 * holdout:
            problems.append(
                f"transactions: {days} days of history; a {holdout}-day hold-out needs "
                f"at least {3 * holdout}"
            )
        if len(tables["products"]) < settings.evaluation["k"]:
            problems.append(f"products: fewer than k={settings.evaluation['k']} in the catalogue")
        return problems

    def features(self, tables: Mapping[str, pd.DataFrame], settings: Settings) -> PurchaseHistory:
        holdout = self._holdout_days(settings)
        customers = tables["customers"]
        consenting = customers.loc[
            customers["consent_profiling"].to_numpy(dtype=bool), "customer_id"
        ]
        tx = tables["transactions"]
        tx = tx.loc[is_member(tx["customer_id"], consenting), ["customer_id", "product_id", "ts"]]
        all_ts = tables["transactions"]["ts"]
        cutoff = all_ts.max().normalize() - pd.Timedelta(days=holdout - 1)
        before = tx["ts"] < cutoff
        history = pd.DataFrame(
            {
                "customer_id": tx.loc[before, "customer_id"].to_numpy(),
                "product_id": tx.loc[before, "product_id"].to_numpy(),
                "age_days": (
                    (cutoff - tx.loc[before, "ts"]).dt.total_seconds() / 86_400
                ).to_numpy(),
            }
        )
        after = tx.loc[~before, ["customer_id", "product_id"]]
        known = is_member(after["customer_id"], history["customer_id"])
        heldout = after[known].drop_duplicates().reset_index(drop=True)
        categories = tables["categories"]
        return PurchaseHistory(
            history=history,
            heldout=heldout,
            catalogue=tables["products"].set_index("product_id")["category_id"],
            category_names=dict(
                zip(categories["category_id"], categories["category"], strict=True)
            ),
            region=customers.set_index("customer_id")["region"],
            cutoff=cutoff,
            period_start=all_ts.min(),
            period_end=all_ts.max(),
            history_lines=int(before.sum()),
            heldout_lines=int((~before).sum()),
            cold_customers=int(after.loc[~known, "customer_id"].nunique()),
        )

    def train(
        self, features: PurchaseHistory, settings: Settings, seed: int
    ) -> tuple[ItemRecommender, dict[str, Any]]:
        hyper = settings.hyperparameters
        products = features.catalogue.index.to_numpy(dtype=str)
        index = pd.Index(products)
        history = features.history
        customers = pd.Index(history["customer_id"].unique())
        rows = customers.get_indexer(history["customer_id"])
        cols = index.get_indexer(history["product_id"])
        keep = cols >= 0
        bought = sparse.csr_matrix(
            (np.ones(int(keep.sum())), (rows[keep], cols[keep])),
            shape=(len(customers), len(products)),
        )
        bought.data[:] = 1.0  # who bought it, not how often
        columns = normalize(bought.tocsc(), axis=0)
        similarity = (columns.T @ columns).tocsr()
        similarity.setdiag(0.0)
        similarity.eliminate_zeros()
        similarity = _top_neighbours(similarity, int(hyper["n_neighbours"]))
        popularity = np.asarray(bought.sum(axis=0)).ravel()
        model = ItemRecommender(
            products=products,
            similarity=similarity.astype(np.float32),
            popularity=popularity,
            history_weight=float(hyper["history_weight"]),
            popularity_weight=float(hyper["popularity_weight"]),
            half_life_days=float(hyper["half_life_days"]),
        )
        used = {**hyper, "similarity": "cosine over buyers", "catalogue_size": len(products)}
        return model, used

    def evaluate(
        self, model: ItemRecommender, features: PurchaseHistory, settings: Settings
    ) -> Evaluation:
        k = int(settings.evaluation["k"])
        heldout = features.heldout
        customers = pd.Index(heldout["customer_id"].unique())
        catalogue = features.catalogue.index
        relevant = sparse.csr_matrix(
            (
                np.ones(len(heldout)),
                (
                    customers.get_indexer(heldout["customer_id"]),
                    catalogue.get_indexer(heldout["product_id"]),
                ),
            ),
            shape=(len(customers), len(catalogue)),
        )
        relevant.data[:] = 1.0
        history = model.history_matrix(features.history, customers)
        # Model positions -> catalogue positions (a product gone from the catalogue: -1).
        to_catalogue = catalogue.get_indexer(model.products)
        recommended = to_catalogue[model.recommend(history, k)]
        recommended_ok = np.where(recommended >= 0, recommended, 0)
        scores = _ranking_scores(recommended_ok, relevant, k)
        scores["hits"] &= recommended >= 0

        history_catalogue = catalogue.get_indexer(features.history["product_id"])
        popular = (
            pd.Series(features.history["customer_id"].to_numpy())
            .groupby(history_catalogue)
            .nunique()
            .drop(index=-1, errors="ignore")
            .sort_values(ascending=False, kind="stable")
        )
        top = popular.index.to_numpy()[:k]
        baseline = _ranking_scores(np.tile(top, (len(customers), 1)), relevant, k)

        metrics = {
            "hit_rate_at_k": finite(scores["hit"].mean()),
            "precision_at_k": finite(scores["precision"].mean()),
            "recall_at_k": finite(scores["recall"].mean()),
            "ndcg_at_k": finite(scores["ndcg"].mean()),
            "catalogue_coverage": finite(
                len(np.unique(recommended[recommended >= 0])) / len(catalogue)
            ),
            "baseline_hit_rate_at_k": finite(baseline["hit"].mean()),
            "baseline_precision_at_k": finite(baseline["precision"].mean()),
            "baseline_recall_at_k": finite(baseline["recall"].mean()),
            "baseline_ndcg_at_k": finite(baseline["ndcg"].mean()),
            "baseline_catalogue_coverage": finite(len(top) / len(catalogue)),
        }

        lines = (
            features.history.groupby("customer_id")
            .size()
            .reindex(customers, fill_value=0)
            .to_numpy()
        )
        band = np.empty(len(customers), dtype=object)
        for low, high, name in ACTIVITY_BANDS:
            band[(lines >= low) & ((lines < high) if high else True)] = name
        region = features.region.reindex(customers).fillna("unknown").to_numpy()

        def per_customer(mask: np.ndarray) -> dict[str, float]:
            return {
                "customers": float(mask.sum()),
                "hit_rate_at_k": finite(scores["hit"][mask].mean()),
                "baseline_hit_rate_at_k": finite(baseline["hit"][mask].mean()),
                "recall_at_k": finite(scores["recall"][mask].mean()),
            }

        # Per category: the share of held-out purchases of that category's products that
        # were among the buyer's recommendations.
        pair_customer = customers.get_indexer(heldout["customer_id"])
        pair_item = catalogue.get_indexer(heldout["product_id"])
        in_top = (recommended[pair_customer] == pair_item[:, None]).any(axis=1)
        in_baseline = np.isin(pair_item, top)
        pair_category = features.catalogue.iloc[pair_item].to_numpy()
        by_category = {}
        for category_id in np.unique(pair_category):
            mask = pair_category == category_id
            by_category[features.category_names.get(category_id, str(category_id))] = {
                "purchases": float(mask.sum()),
                "item_hit_rate": finite(in_top[mask].mean()),
                "baseline_item_hit_rate": finite(in_baseline[mask].mean()),
            }
        slices = {
            "region": {str(r): per_customer(region == r) for r in sorted(set(region))},
            "activity": {
                name: per_customer(band == name)
                for _, _, name in ACTIVITY_BANDS
                if (band == name).any()
            },
            "category": by_category,
        }
        end = features.period_end
        data = {
            "dataset": "Purchases in the hold-out window",
            "period_start": date_text(features.cutoff),
            "period_end": date_text(end),
            "row_count": len(heldout),
            "text": (
                f"Purchases from {date_text(features.cutoff)} to {date_text(end)} "
                f"({features.heldout_lines} lines) by {len(customers)} customers with "
                f"profiling consent and earlier purchases: {len(heldout)} distinct "
                f"customer-product pairs, never seen in training. Recommendations (k={k}) are "
                "made from each customer's purchases before the window and compared with "
                f"the {k} most popular products. {features.cold_customers} customers who "
                "bought only in the window are left out (nothing to recommend from)."
            ),
        }
        return Evaluation(metrics=metrics, slices=slices, data=data)

    def training_data(self, features: PurchaseHistory) -> dict[str, Any]:
        last = features.cutoff - pd.Timedelta(days=1)
        customers = features.history["customer_id"].nunique()
        return {
            "period_start": date_text(features.period_start),
            "period_end": date_text(last),
            "row_count": features.history_lines,
            "text": (
                f"{features.history_lines} purchase lines of {customers} customers with "
                f"profiling consent, from {date_text(features.period_start)} to "
                f"{date_text(last)}; catalogue of {len(features.catalogue)} products."
            ),
        }


def _top_neighbours(similarity: sparse.csr_matrix, n: int) -> sparse.csr_matrix:
    """Keep each product's n most similar products (rows), drop the long tail."""
    similarity = similarity.tocsr()
    rows, cols, vals = [], [], []
    for r in range(similarity.shape[0]):
        start, end = similarity.indptr[r], similarity.indptr[r + 1]
        if end == start:
            continue
        values = similarity.data[start:end]
        keep = np.argsort(-values, kind="stable")[:n]
        rows.append(np.full(len(keep), r))
        cols.append(similarity.indices[start:end][keep])
        vals.append(values[keep])
    if not rows:
        return sparse.csr_matrix(similarity.shape)
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=similarity.shape
    )

"""Demo registry: several versions of each model with consistent metrics and cards, one
version in production and one in canary per model, each approved by the demo board
(`manage.py demo_users` first) for its target before it was assigned. Idempotent: a
second run finds everything registered and changes nothing."""

import hashlib
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from governance.choices import CardSectionKey, LifecycleState, Target
from governance.models import ModelVersion
from governance.reviews.management.demo_board import board_approve, demo_board
from governance.selectors.fairness import fairness_assessment_rows
from governance.services.cards import card_section_confirm, card_section_write
from governance.services.registry import target_assign, version_register
from portal.accounts.choices import Role
from portal.accounts.models import User
from portal.audit.actors import Actor

ACTOR = Actor.system("demo")
CATEGORIES = ("grocery", "household", "apparel", "electronics")
REGIONS = ("north", "south", "east", "west")


def _sha(*parts: object, length: int = 64) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:length]


def _forecasting(mae: float, mape: float) -> tuple[dict, dict]:
    metrics = {"mae": mae, "mape": mape, "rmse": round(mae * 1.37, 1), "bias": round(mae * 0.04, 1)}
    spread = {"grocery": 0.82, "household": 0.95, "apparel": 1.31, "electronics": 1.18}
    regions = {"north": 1.04, "south": 0.97, "east": 1.02, "west": 0.96}
    slices = {
        "category": {
            c: {"mae": round(mae * f, 1), "mape": round(mape * f, 4)} for c, f in spread.items()
        },
        "region": {
            r: {"mae": round(mae * f, 1), "mape": round(mape * f, 4)} for r, f in regions.items()
        },
    }
    return metrics, slices


def _segmentation(silhouette: float, sizes: list[int]) -> tuple[dict, dict]:
    metrics = {
        "silhouette": silhouette,
        "davies_bouldin": round(1.9 - silhouette * 1.6, 3),
        "n_clusters": len(sizes),
        "cluster_sizes": sizes,
    }
    slices = {
        "region": {
            r: {"silhouette": round(silhouette + d, 3)}
            for r, d in zip(REGIONS, (0.012, -0.018, 0.004, -0.006), strict=True)
        }
    }
    return metrics, slices


def _recommendation(hit_rate: float, coverage: float) -> tuple[dict, dict]:
    metrics = {
        "hit_rate_at_10": hit_rate,
        "coverage": coverage,
        "ndcg_at_10": round(hit_rate * 0.61, 4),
        "precision_at_10": round(hit_rate / 7.5, 4),
    }
    segments = {"new": 0.62, "occasional": 0.91, "regular": 1.08, "loyal": 1.21}
    slices = {
        "segment": {s: {"hit_rate_at_10": round(hit_rate * f, 4)} for s, f in segments.items()}
    }
    return metrics, slices


# (model, version, metrics, slices, days ago, hyperparameters)
VERSIONS: list[tuple[str, str, tuple[dict, dict], int, dict]] = [
    (
        "demand-forecasting",
        "1.0.0",
        _forecasting(412.0, 0.1421),
        330,
        {"learning_rate": 0.05, "num_leaves": 31, "horizon_weeks": 8},
    ),
    (
        "demand-forecasting",
        "1.1.0",
        _forecasting(395.4, 0.1352),
        250,
        {"learning_rate": 0.05, "num_leaves": 63, "horizon_weeks": 8},
    ),
    (
        "demand-forecasting",
        "1.2.0",
        _forecasting(371.9, 0.1268),
        160,
        {"learning_rate": 0.03, "num_leaves": 63, "horizon_weeks": 8},
    ),
    (
        "demand-forecasting",
        "2.0.0",
        _forecasting(344.2, 0.1183),
        75,
        {"learning_rate": 0.03, "num_leaves": 127, "horizon_weeks": 12},
    ),
    (
        "demand-forecasting",
        "2.1.0",
        _forecasting(338.6, 0.1152),
        12,
        {"learning_rate": 0.02, "num_leaves": 127, "horizon_weeks": 12},
    ),
    (
        "customer-segmentation",
        "1.0.0",
        _segmentation(0.412, [41200, 38800, 35100, 30400, 22900, 15600]),
        300,
        {"algorithm": "kmeans", "k": 6, "features": 14},
    ),
    (
        "customer-segmentation",
        "1.1.0",
        _segmentation(0.438, [40100, 39600, 34800, 31200, 23100, 15200]),
        190,
        {"algorithm": "kmeans", "k": 6, "features": 18},
    ),
    (
        "customer-segmentation",
        "1.2.0",
        _segmentation(0.471, [39400, 37900, 33300, 29800, 22400, 14100, 7100]),
        90,
        {"algorithm": "kmeans", "k": 7, "features": 18},
    ),
    (
        "customer-segmentation",
        "1.3.0",
        _segmentation(0.466, [39100, 38200, 33600, 29500, 22800, 13900, 6900]),
        9,
        {"algorithm": "kmeans", "k": 7, "features": 21},
    ),
    (
        "product-recommendation",
        "1.0.0",
        _recommendation(0.1824, 0.412),
        280,
        {"model": "item2item", "neighbours": 50},
    ),
    (
        "product-recommendation",
        "2.0.0",
        _recommendation(0.2311, 0.518),
        170,
        {"model": "two-tower", "embedding_dim": 64, "epochs": 12},
    ),
    (
        "product-recommendation",
        "2.1.0",
        _recommendation(0.2437, 0.553),
        60,
        {"model": "two-tower", "embedding_dim": 128, "epochs": 15},
    ),
    (
        "product-recommendation",
        "2.2.0",
        _recommendation(0.2514, 0.581),
        6,
        {"model": "two-tower", "embedding_dim": 128, "epochs": 20},
    ),
]
PRODUCTION = {
    "demand-forecasting": "2.0.0",
    "customer-segmentation": "1.2.0",
    "product-recommendation": "2.1.0",
}
CANARY = {
    "demand-forecasting": "2.1.0",
    "customer-segmentation": "1.3.0",
    "product-recommendation": "2.2.0",
}
# First versions get a card written in full; later ones inherit it, and each version put
# on a target has its inherited sections confirmed before the board reviews it.
SCHEMAS: dict[str, list[dict[str, Any]]] = {
    "demand-forecasting": [
        {
            "name": "store_id",
            "type": "string",
            "source": "BigQuery sales_daily",
            "personal_data": False,
            "description": "Store code",
        },
        {
            "name": "category",
            "type": "string",
            "source": "BigQuery product_catalogue",
            "personal_data": False,
            "description": "Product category",
        },
        {
            "name": "week",
            "type": "date",
            "source": "BigQuery sales_daily",
            "personal_data": False,
            "description": "ISO week start",
        },
        {
            "name": "units_sold_lags",
            "type": "float[8]",
            "source": "BigQuery sales_daily",
            "personal_data": False,
            "description": "Units sold, previous 8 weeks",
        },
        {
            "name": "promo_flag",
            "type": "bool",
            "source": "Promotions calendar",
            "personal_data": False,
            "description": "",
        },
        {
            "name": "holiday_flag",
            "type": "bool",
            "source": "Public holidays table",
            "personal_data": False,
            "description": "",
        },
    ],
    "customer-segmentation": [
        {
            "name": "customer_pid",
            "type": "string",
            "source": "CRM (pseudonymised)",
            "personal_data": True,
            "description": "Pseudonymous loyalty id",
        },
        {
            "name": "recency_days",
            "type": "int",
            "source": "BigQuery transactions",
            "personal_data": True,
            "description": "Days since last purchase",
        },
        {
            "name": "frequency_90d",
            "type": "int",
            "source": "BigQuery transactions",
            "personal_data": True,
            "description": "Purchases in 90 days",
        },
        {
            "name": "monetary_90d",
            "type": "float",
            "source": "BigQuery transactions",
            "personal_data": True,
            "description": "Spend in 90 days",
        },
        {
            "name": "category_mix",
            "type": "float[12]",
            "source": "BigQuery transactions",
            "personal_data": True,
            "description": "Share of spend per category",
        },
        {
            "name": "region",
            "type": "string",
            "source": "CRM",
            "personal_data": True,
            "description": "Home region (coarse)",
        },
    ],
    "product-recommendation": [
        {
            "name": "customer_pid",
            "type": "string",
            "source": "CRM (pseudonymised)",
            "personal_data": True,
            "description": "Pseudonymous customer id",
        },
        {
            "name": "basket_items",
            "type": "string[]",
            "source": "Web shop events",
            "personal_data": True,
            "description": "Items in the current basket",
        },
        {
            "name": "purchase_history",
            "type": "string[]",
            "source": "BigQuery transactions",
            "personal_data": True,
            "description": "Last 50 products bought",
        },
        {
            "name": "item_features",
            "type": "float[64]",
            "source": "Product catalogue",
            "personal_data": False,
            "description": "Item embedding inputs",
        },
    ],
}
TEXT: dict[str, dict[str, str]] = {
    "demand-forecasting": {
        "model_details": "Gradient-boosted trees forecasting weekly unit sales per product "
        "category and store, eight to twelve weeks ahead.",
        "intended_use": "**Intended:** stock replenishment and distribution planning.\n\n"
        "**Out of scope:** staff scheduling, pricing decisions, any use at customer level.",
        "limitations": "- Weak on new stores with under 12 weeks of history.\n"
        "- Apparel errors are about a third higher than grocery (seasonal ranges).\n"
        "- Does not see competitor promotions.",
        "fairness_assessment": "Aggregate sales only: no person is scored. Stores in "
        "lower-income areas were checked for systematically worse forecasts (under-stocking).",
        "ethical_considerations": "Under-forecasting could leave essentials short in some "
        "regions; a floor on staple categories mitigates it.",
        "evaluation_data": "Last 8 weeks held out, all stores.",
    },
    "customer-segmentation": {
        "model_details": "k-means clustering of loyalty customers on recency, frequency, "
        "spend and category mix.",
        "intended_use": "**Intended:** choosing marketing themes per segment.\n\n"
        "**Out of scope:** credit, pricing per person, or any decision with legal or "
        "similarly significant effect (GDPR Art. 22).",
        "limitations": "- Customers with under 3 purchases land in a catch-all segment.\n"
        "- Segments drift after seasonal peaks; retrained monthly.",
        "fairness_assessment": "Segment membership was compared across age bands and regions "
        "for proxies of protected characteristics.",
        "ethical_considerations": "Profiling: covered by the transparency notice; customers "
        "may object and are then excluded from segmentation.",
        "evaluation_data": "A 10% customer sample held out from training.",
    },
    "product-recommendation": {
        "model_details": "Two-tower retrieval model ranking products from basket and "
        "purchase history.",
        "intended_use": "**Intended:** 'you may also like' on the web shop and app.\n\n"
        "**Out of scope:** recommendations of age-restricted products, e-mail targeting "
        "without consent.",
        "limitations": "- Cold start: new customers get popularity-based lists.\n"
        "- Long-tail items are under-recommended (see coverage).",
        "fairness_assessment": "Hit rate compared between new and loyal customers, and "
        "between regions.",
        "ethical_considerations": "Personalisation uses pseudonymised ids only; customers "
        "can switch it off in their account.",
        "evaluation_data": "Last 2 weeks of sessions, held out.",
    },
}


class Command(BaseCommand):
    help = "Load demo model versions, metrics and cards into the registry (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        board = demo_board()  # the board approves every placement: its members first
        created_count = 0
        now = timezone.now()
        for slug, number, (metrics, slices), days_ago, hyper in VERSIONS:
            body = {
                "version": number,
                "artifact_uri": f"gs://zm-models/{slug}/{number}/model",
                "image_uri": (
                    f"europe-west1-docker.pkg.dev/zm-ml/serving/{slug}"
                    f"@sha256:{_sha(slug, number, 'image')}"
                ),
                "image_digest": f"sha256:{_sha(slug, number, 'image')}",
                "data_version": f"bq-snapshot-{_sha(slug, number, 'data', length=12)}",
                "code_version": _sha(slug, number, "code", length=40),
                "pipeline_run_id": f"{slug}-train-{_sha(slug, number, 'run', length=8)}",
                "hyperparameters": hyper,
                "metrics": metrics,
                "metric_slices": slices,
            }
            with transaction.atomic():
                version, created = version_register(model_slug=slug, data=body, actor=ACTOR)
                if not created:
                    continue
                created_count += 1
                ModelVersion.objects.filter(pk=version.pk).update(
                    registered_at=now - timedelta(days=days_ago),
                    metrics_updated_at=now - timedelta(days=days_ago),
                )
                version.refresh_from_db(fields=["registered_at", "metrics_updated_at"])
                self._write_card(version, days_ago)
        self._place(board)
        self.stdout.write(
            f"Demo registry: {created_count} version(s) registered, "
            f"{len(VERSIONS) - created_count} already there."
        )

    def _write_card(self, version: ModelVersion, days_ago: int) -> None:
        slug = version.model.slug
        card = version.card
        first = card.inherited_from_id is None
        text = TEXT[slug]
        if first:
            writes = {
                CardSectionKey.MODEL_DETAILS: (
                    text["model_details"],
                    {
                        "owners": ["ML platform team", "Data science lead"],
                        "licence": "Proprietary, Zero Margin Limited",
                        "references": ["https://wiki.zeromargin.example/ml/" + slug],
                    },
                ),
                CardSectionKey.INTENDED_USE: (text["intended_use"], None),
                CardSectionKey.DATA_SCHEMA: (
                    "Inputs as the feature pipeline delivers them.",
                    {"fields": SCHEMAS[slug]},
                ),
                CardSectionKey.EVALUATION_DATA: (text["evaluation_data"], None),
                CardSectionKey.LIMITATIONS: (text["limitations"], None),
                # The rows state what the version's slices hold, not a finding
                # written beside them.
                CardSectionKey.FAIRNESS_ASSESSMENT: (
                    text["fairness_assessment"],
                    {
                        "assessments": fairness_assessment_rows(
                            version=version, assessed_by="Data science lead"
                        )
                    },
                ),
                CardSectionKey.ETHICAL_CONSIDERATIONS: (text["ethical_considerations"], None),
            }
        else:
            writes = {}
        end = (timezone.now() - timedelta(days=days_ago + 3)).date()
        writes[CardSectionKey.TRAINING_DATA] = (
            "Deduplicated, returns netted off, stores closed over a week excluded.",
            {
                "dataset": f"bq://zm-analytics.ml.{slug.replace('-', '_')}_training",
                "data_version": version.data_version,
                "period_start": (end - timedelta(days=730)).isoformat(),
                "period_end": end.isoformat(),
                "row_count": 1_250_000 + int(_sha(slug, version.version, length=5), 16),
            },
        )
        for key, (content, data) in writes.items():
            card_section_write(
                card=card, key=key, content=content, data=data, actor=ACTOR, comment="Demo data"
            )

    def _confirm_card(self, version: ModelVersion, lead: User) -> None:
        """The data science lead confirms for `version` the card sections it inherited,
        so its card is complete before the board sees it (the canary and production
        policies check that)."""
        for key in version.card.sections.filter(inherited=True).values_list("key", flat=True):
            card_section_confirm(
                card=version.card,
                key=key,
                actor_user=lead,
                comment="Confirmed for this version (demo).",
            )

    def _place(self, board: dict[str, User]) -> None:
        """Replay each model's promotions in version order, up to today's production
        version (each promotion retires the one before), then start the canary. The
        board approves each version for its target before it is assigned (staging, then
        canary, then production, under the default policies), as the gate requires."""
        for slug, number in PRODUCTION.items():
            production = ModelVersion.objects.get(model__slug=slug, version=number)
            rank = (production.version_major, production.version_minor, production.version_patch)
            history = ModelVersion.objects.filter(
                model__slug=slug, state=LifecycleState.REGISTERED
            ).order_by("version_major", "version_minor", "version_patch")
            for version in history:
                if (version.version_major, version.version_minor, version.version_patch) > rank:
                    break
                self._confirm_card(version, board[Role.DATA_SCIENCE_LEAD])
                board_approve(version=version, target=Target.PRODUCTION, board=board)
                target_assign(version=version, target=Target.PRODUCTION, actor=ACTOR)
        for slug, number in CANARY.items():
            canary = ModelVersion.objects.get(model__slug=slug, version=number)
            if canary.state == LifecycleState.REGISTERED:
                self._confirm_card(canary, board[Role.DATA_SCIENCE_LEAD])
                board_approve(version=canary, target=Target.CANARY, board=board)
                target_assign(version=canary, target=Target.CANARY, actor=ACTOR)

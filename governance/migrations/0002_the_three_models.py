"""The client's three production models. Versions arrive through the registration API."""

from django.db import migrations

MODELS = [
    {
        "slug": "demand-forecasting",
        "name": "Demand forecasting",
        "kind": "forecasting",
        "risk_tier": "low",
        "description": (
            "Forecasts weekly unit sales per product category and store, feeding stock "
            "replenishment. Works on aggregated sales; uses no personal data."
        ),
    },
    {
        "slug": "customer-segmentation",
        "name": "Customer segmentation",
        "kind": "segmentation",
        "risk_tier": "high",
        "description": (
            "Groups loyalty-card customers by purchasing behaviour for marketing. Profiling "
            "of personal data under GDPR: transparency notice and objection right apply."
        ),
    },
    {
        "slug": "product-recommendation",
        "name": "Product recommendation",
        "kind": "recommendation",
        "risk_tier": "medium",
        "description": (
            "Recommends products on the web shop and in the app from a customer's basket "
            "and purchase history. Personalised: uses pseudonymised customer ids."
        ),
    },
]


def create_models(apps, schema_editor):
    RegisteredModel = apps.get_model("governance", "RegisteredModel")
    for fields in MODELS:
        RegisteredModel.objects.update_or_create(slug=fields["slug"], defaults=fields)


def remove_models(apps, schema_editor):
    RegisteredModel = apps.get_model("governance", "RegisteredModel")
    RegisteredModel.objects.filter(slug__in=[m["slug"] for m in MODELS], versions=None).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [migrations.RunPython(create_models, remove_models)]

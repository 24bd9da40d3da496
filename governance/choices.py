from django.db import models


class ModelKind(models.TextChoices):
    FORECASTING = "forecasting", "Demand forecasting"
    SEGMENTATION = "segmentation", "Customer segmentation"
    RECOMMENDATION = "recommendation", "Product recommendation"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class LifecycleState(models.TextChoices):
    REGISTERED = "registered", "Registered"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    CANARY = "canary", "Deployed to canary"
    PRODUCTION = "production", "Deployed to production"
    RETIRED = "retired", "Retired"
    ROLLED_BACK = "rolled_back", "Rolled back"
    DISCARDED = "discarded", "Discarded"


class Target(models.TextChoices):
    STAGING = "staging", "Staging"
    CANARY = "canary", "Canary"
    PRODUCTION = "production", "Production"


class CardSectionKey(models.TextChoices):
    """Sections of a model card: Google's Model Card Toolkit schema plus the client's
    governance framework (data schema, fairness assessment)."""

    MODEL_DETAILS = "model_details", "Model details"
    INTENDED_USE = "intended_use", "Intended and out-of-scope uses"
    DATA_SCHEMA = "data_schema", "Data schema"
    TRAINING_DATA = "training_data", "Training data"
    EVALUATION_DATA = "evaluation_data", "Evaluation data"
    PERFORMANCE = "performance", "Performance"
    LIMITATIONS = "limitations", "Limitations"
    FAIRNESS_ASSESSMENT = "fairness_assessment", "Fairness assessment"
    ETHICAL_CONSIDERATIONS = "ethical_considerations", "Ethical considerations and mitigations"
    CAVEATS_RECOMMENDATIONS = "caveats_recommendations", "Caveats and recommendations"

from django.db import models


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"
    ALERT = "alert", "Monitoring alert"
    API = "api", "API"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    DISCARDED = "discarded", "Discarded: not better than production"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATES = (RunState.QUEUED, RunState.RUNNING)
FINISHED_RUN_STATES = (RunState.SUCCEEDED, RunState.DISCARDED, RunState.FAILED, RunState.CANCELLED)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class RunBackend(models.TextChoices):
    LOCAL = "local", "Local runner"
    VERTEX = "vertex", "Vertex AI Pipelines"


# The steps of a local run, in order: the six of `pipelines.STEPS`, then the portal's
# own two. Spelled out here so that pages need not import the training code.
STEP_TITLES: dict[str, str] = {
    "snapshot": "Load the data snapshot",
    "validate": "Validate schema, nulls and ranges",
    "features": "Build features",
    "train": "Train",
    "evaluate": "Evaluate on held-out data",
    "package": "Store the artifact and metadata",
    "register": "Register the version and fill its card",
    "compare": "Compare with production and decide",
}
SCHEDULED_TASK = "training.start_scheduled_run"


class ImportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Imported"
    REFUSED = "refused", "Refused: too many rows rejected"
    FAILED = "failed", "Failed"


ACTIVE_IMPORT_STATES = (ImportState.QUEUED, ImportState.RUNNING)
# The lake tables an import may fill, in the order the form asks for them.
IMPORT_TABLES = ("transactions", "customers", "products", "categories", "promotions")
# Each table's lake column names, for the import form's mapping help (spelled out so the
# page need not import the training code; a test holds them to pipelines.schema).
IMPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": (
        "transaction_id",
        "ts",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "amount",
        "promotion",
        "channel",
    ),
    "customers": (
        "customer_id",
        "name",
        "email",
        "city",
        "region",
        "birth_year",
        "signup_date",
        "consent_profiling",
        "consent_marketing",
    ),
    "products": ("product_id", "category_id", "product_name", "list_price"),
    "categories": ("category_id", "category", "department"),
    "promotions": ("promotion_id", "category_id", "start_date", "end_date", "discount"),
}

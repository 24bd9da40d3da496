"""The portal's one settings file, configured from the environment.

Every variable is listed in README.md. Development defaults are safe to run on a
laptop; with DJANGO_DEBUG=false the portal refuses to start without a real
SECRET_KEY and ALLOWED_HOSTS.
"""

import json
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from portal.attestation import attestation_keys_parse
from portal.env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", True)

# Development only: refused below when DJANGO_DEBUG=false.
_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdef"  # noqa: S105  # nosec B105
SECRET_KEY = env_str("SECRET_KEY", "" if not DEBUG else _DEV_SECRET_KEY)
if not DEBUG:
    if not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_DEBUG=false")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            "SECRET_KEY must be at least 50 characters with at least 5 distinct ones"
        )

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_DEBUG=false")

PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_base = urlsplit(PORTAL_BASE_URL)
if _base.scheme not in {"http", "https"} or not _base.netloc:
    raise ImproperlyConfigured(f"PORTAL_BASE_URL must be an http(s) URL, not {PORTAL_BASE_URL!r}")
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"]

INSTALLED_APPS = [
    # the base (imports no app)
    "portal.accounts",
    "portal.audit",
    "portal.apitokens",
    "portal.ui",
    "portal.health",
    "portal.notify",
    "portal.security",
    "portal.changes",
    "portal.exports",
    # the apps
    "governance",
    "governance.reviews",
    "governance.training",
    "governance.rollouts",
    "monitoring",
    "datasubjects",
    # Django and third parties
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "django_prometheus",
    "django_celery_beat",
    "social_django",
    "axes",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside everything else that can answer an error (the security headers still
    # reach its answers): /api/ and /hooks/ errors are JSON.
    "portal.api.middleware.ApiJsonErrorMiddleware",
    # A NUL in the URL is a 400 before any view puts it in a query (PostgreSQL refuses it).
    "portal.api.middleware.NulRefusalMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "social_django.middleware.SocialAuthExceptionMiddleware",
    "axes.middleware.AxesMiddleware",
    "portal.security.middleware.RefusalRecordMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.ui.context_processors.shell",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
_env = environ.Env()
DATABASES = {
    "default": _env.db_url_config(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
# A reused connection the server has closed (a restart, a Cloud SQL failover) is
# replaced at the start of the next request instead of failing it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Lets psycopg prepare the queries portal.dbprepared asks it to (the gate's); Django's
    # own cursors bind on the client and never prepare, whatever the threshold (psycopg's
    # default). Off (None, Django's default) behind a pooler in transaction mode that
    # cannot keep prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "prepare_threshold", 5 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # IMMEDIATE: a write transaction takes the lock at BEGIN, so the web process and
    # the worker queue for it instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": _env.cache_url_config(env_str("CACHE_URL", "locmemcache://"))}

# --- accounts and sign-in -------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "ui:home"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_LOGIN_ENABLED = env_bool("PASSWORD_LOGIN_ENABLED", True)
# A person an admin creates sets their own password through a one-time link (Django's
# password reset token: it stops working once used or after this long).
SET_PASSWORD_LINK_HOURS = env_int("SET_PASSWORD_LINK_HOURS", 24, minimum=1)
PASSWORD_RESET_TIMEOUT = SET_PASSWORD_LINK_HOURS * 3600
# Governance changes that need a second admin expire undecided after this long; an
# approver whose role is younger than GOVERNANCE_FRESH_ROLE_HOURS is flagged on reviews.
GOVERNANCE_CHANGE_TTL_HOURS = env_int("GOVERNANCE_CHANGE_TTL_HOURS", 72, minimum=1)
GOVERNANCE_FRESH_ROLE_HOURS = env_int("GOVERNANCE_FRESH_ROLE_HOURS", 24, minimum=0)

AUTH_PASSWORD_VALIDATORS = [
    # Django caps no new password; ours are at most 128 characters (portal.accounts.passwords).
    {"NAME": "portal.accounts.passwords.MaximumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# SSO settings are read further down; the backend list only needs to know the switch.
AUTHENTICATION_BACKENDS = [
    # axes first: it refuses a locked-out client before any password is checked
    "axes.backends.AxesStandaloneBackend",
    "portal.accounts.sso.GoogleWorkspaceOAuth2",
    *(["django.contrib.auth.backends.ModelBackend"] if PASSWORD_LOGIN_ENABLED else []),
]

# Sign-in failures are rate-limited per (username, client IP).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_USERNAME_FORM_FIELD = "username"
# Load balancers in front of the portal: each appends the address it saw to
# X-Forwarded-For, so the client is the hop this many places from the right. One
# function reads it for the lockouts, the audit trail and rate limits alike.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "portal.audit.actors.client_ip_for_request"
# The lockout key's username is normalised as the sign-in form normalises it.
AXES_USERNAME_CALLABLE = "portal.accounts.identifiers.axes_username"
AXES_VERBOSE = False

# Google SSO, restricted to the client's Workspace domain.
GOOGLE_OAUTH2_KEY = env_str("GOOGLE_OAUTH2_KEY")
GOOGLE_OAUTH2_SECRET = env_str("GOOGLE_OAUTH2_SECRET")
GOOGLE_WORKSPACE_DOMAIN = env_str("GOOGLE_WORKSPACE_DOMAIN")
SSO_ENABLED = bool(GOOGLE_OAUTH2_KEY and GOOGLE_OAUTH2_SECRET)
if SSO_ENABLED and not GOOGLE_WORKSPACE_DOMAIN:
    raise ImproperlyConfigured("GOOGLE_WORKSPACE_DOMAIN must be set when Google SSO is on")
if not PASSWORD_LOGIN_ENABLED and not SSO_ENABLED:
    raise ImproperlyConfigured("PASSWORD_LOGIN_ENABLED=false needs Google SSO configured")
# Where Google's OAuth2 endpoints live; only changed to point at a stand-in server.
GOOGLE_OAUTH2_AUTH_URL = env_str(
    "GOOGLE_OAUTH2_AUTH_URL", "https://accounts.google.com/o/oauth2/auth"
)
GOOGLE_OAUTH2_TOKEN_URL = env_str(
    "GOOGLE_OAUTH2_TOKEN_URL", "https://accounts.google.com/o/oauth2/token"
)
GOOGLE_OAUTH2_USERINFO_URL = env_str(
    "GOOGLE_OAUTH2_USERINFO_URL", "https://www.googleapis.com/oauth2/v3/userinfo"
)
SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = GOOGLE_OAUTH2_KEY
SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = GOOGLE_OAUTH2_SECRET


def google_workspace_settings(domain: str) -> dict:
    """The settings that restrict Google SSO to one Workspace domain: social-auth's
    allowed domains, and `hd` on the authorization request so Google offers only
    accounts of that domain. The tests' OAuth stand-in uses this same function."""
    domain = domain.strip().lower()
    return {
        "GOOGLE_WORKSPACE_DOMAIN": domain,
        "SOCIAL_AUTH_GOOGLE_OAUTH2_WHITELISTED_DOMAINS": [domain] if domain else [],
        "SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS": {"hd": domain} if domain else {},
    }


_workspace = google_workspace_settings(GOOGLE_WORKSPACE_DOMAIN)
GOOGLE_WORKSPACE_DOMAIN = _workspace["GOOGLE_WORKSPACE_DOMAIN"]
SOCIAL_AUTH_GOOGLE_OAUTH2_WHITELISTED_DOMAINS = _workspace[
    "SOCIAL_AUTH_GOOGLE_OAUTH2_WHITELISTED_DOMAINS"
]
SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS = _workspace[
    "SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS"
]
SOCIAL_AUTH_USER_MODEL = AUTH_USER_MODEL
SOCIAL_AUTH_USERNAME_IS_FULL_EMAIL = True
SOCIAL_AUTH_JSONFIELD_ENABLED = True
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_LOGIN_ERROR_URL = "/accounts/login/"
SOCIAL_AUTH_RAISE_EXCEPTIONS = False
SOCIAL_AUTH_REDIRECT_IS_HTTPS = _base.scheme == "https"
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "social_core.pipeline.social_auth.social_user",
    "portal.accounts.sso.associate_by_verified_email",
    "portal.accounts.sso.create_user_without_roles",
    "social_core.pipeline.social_auth.associate_user",
    "social_core.pipeline.social_auth.load_extra_data",
)

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.apitokens.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.apitokens.permissions.HasRequiredScopes"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.exceptions.json_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.parsers.StoredJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Model governance portal API",
    "DESCRIPTION": "Registry, review gates and audit for the client's production models. "
    "Machines authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Any signed-in person reads the schema; a token only while its owner holds a role.
    "SERVE_PERMISSIONS": ["portal.apitokens.permissions.HasRequiredScopes"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # 401 and 403 with the error body on every operation that needs credentials.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.auth_refusals_add",
    ],
}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
    }
    # Producers (web) and consumers (worker) both need the folders to exist.
    for _folder in ("queue", "control"):
        (CELERY_BROKER_FOLDER / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True

# --- training pipelines (governance.training, the `pipelines` package) -----------------
# The data lake (Parquet snapshots) and artifact store of the local runner: folders, or
# Cloud Storage locations (gs://bucket/lake, gs://bucket/artifacts) read and written
# through google-cloud-storage at GCS_API_ENDPOINT. A gs:// lake's snapshots are
# downloaded into a local cache (the PIPELINES_LAKE_CACHE environment variable, by
# default portal-lake-cache in the temporary folder) before they are read.
PIPELINES_LAKE_ROOT = env_str("PIPELINES_LAKE_ROOT", str(VAR_DIR / "lake"))
PIPELINES_ARTIFACT_ROOT = env_str("PIPELINES_ARTIFACT_ROOT", str(VAR_DIR / "artifacts"))
# Where imports read the client's data outside the machine (`lake_import` and the
# Training pages): Cloud Storage (gs://), BigQuery (bq://) and DVC (dvc://). The
# endpoints are empty for Google's own APIs with the application default credentials;
# an http://host:port is called with anonymous credentials (a local server speaking
# their wire format). BIGQUERY_PROJECT bills the reads (the table's project if empty).
GCS_API_ENDPOINT = env_str("GCS_API_ENDPOINT")
# The one folder of this machine the Training pages may import local files from (a
# path typed into the form must lie inside it); gs://, bq:// and dvc:// need none.
PIPELINES_IMPORT_ROOT = env_str("PIPELINES_IMPORT_ROOT", str(VAR_DIR / "imports"))
# Git hosts a dvc:// source may name although they resolve to a private, loopback or
# link-local address (a git server inside the network); every other such host is
# refused, as webhook hosts are (WEBHOOK_PRIVATE_HOSTS).
PIPELINES_DVC_ALLOWED_HOSTS = env_list("PIPELINES_DVC_ALLOWED_HOSTS")
BIGQUERY_API_ENDPOINT = env_str("BIGQUERY_API_ENDPOINT")
BIGQUERY_PROJECT = env_str("BIGQUERY_PROJECT")
# The git SHA of the running code, for lineage where the checkout has no .git (images).
CODE_VERSION = env_str("CODE_VERSION")
# How much worse than production a retrained version may be on its primary metric and
# still go to review: a fraction (0 = it must be strictly better), or "policy" for the
# production review policy's tolerance for that metric.
PIPELINES_RETRAIN_TOLERANCE = env_str("PIPELINES_RETRAIN_TOLERANCE", "0")
# A run "running" without a heartbeat for this long is failed by training.reap_stale_runs.
PIPELINES_STALE_MINUTES = env_int("PIPELINES_STALE_MINUTES", 30, minimum=1)

# --- rollouts (governance.rollouts) and the model server (the `serving` package) -------
# Who ships: the local model server (its routing document) or Cloud Deploy.
ROLLOUTS_BACKEND = env_choice("ROLLOUTS_BACKEND", "local", ["local", "clouddeploy"])
SERVING_ROUTING_FILE = env_str("SERVING_ROUTING_FILE", str(VAR_DIR / "serving" / "routing.json"))
SERVING_URL = env_str("SERVING_URL", "http://127.0.0.1:8600")
SERVING_READY_TIMEOUT = env_int("SERVING_READY_TIMEOUT", 60, minimum=1)  # seconds
# Where canary analysis reads the model server's metrics.
PROMETHEUS_URL = env_str("PROMETHEUS_URL", "http://127.0.0.1:9090")


def _rollout_steps(raw: list[str]) -> list[int]:
    try:
        steps = [int(step) for step in raw]
    except ValueError:
        raise ImproperlyConfigured(f"ROLLOUT_STEPS must be whole percentages, not {raw}") from None
    if not steps or steps != sorted(set(steps)) or steps[0] < 1 or steps[-1] != 100:
        raise ImproperlyConfigured("ROLLOUT_STEPS must rise from 1 or more to 100, e.g. 10,50,100")
    return steps


# The canary's share of traffic at each step, and how long each step bakes before its
# analysis.
ROLLOUT_STEPS = _rollout_steps(env_list("ROLLOUT_STEPS", ["10", "50", "100"]))
ROLLOUT_BAKE_SECONDS = env_int("ROLLOUT_BAKE_SECONDS", 300, minimum=1)
# Canary analysis thresholds (governance.rollouts.analysis.DEFAULT_THRESHOLDS), as JSON.
try:
    ROLLOUT_THRESHOLDS = json.loads(env_str("ROLLOUT_THRESHOLDS", "{}"))
except json.JSONDecodeError:
    raise ImproperlyConfigured("ROLLOUT_THRESHOLDS must be a JSON object") from None
# Cloud Deploy rollouts (ROLLOUTS_BACKEND=clouddeploy): the models' delivery pipeline
# (deploy/models/clouddeploy.yaml; `{model}` in it for one pipeline per model) and each
# release's Skaffold file. The release's image is the model server's, by its name in the
# manifests, pinned to the version's digest.
CLOUD_DEPLOY_PIPELINE_TEMPLATE = env_str(
    "CLOUD_DEPLOY_PIPELINE_TEMPLATE",
    "projects/zm-mlops-prod/locations/europe-west1/deliveryPipelines/ml-models",
)
if not re.fullmatch(
    r"projects/[^/]+/locations/[^/]+/deliveryPipelines/[^/]+", CLOUD_DEPLOY_PIPELINE_TEMPLATE
):
    raise ImproperlyConfigured(
        "CLOUD_DEPLOY_PIPELINE_TEMPLATE must look like "
        "projects/P/locations/L/deliveryPipelines/NAME ({model} may stand in NAME)"
    )
CLOUD_DEPLOY_SKAFFOLD_CONFIG_PATH = env_str(
    "CLOUD_DEPLOY_SKAFFOLD_CONFIG_PATH", "deploy/models/skaffold/{model}.yaml"
)
CLOUD_DEPLOY_IMAGE_NAME = env_str("CLOUD_DEPLOY_IMAGE_NAME", "model-server")
CLOUD_DEPLOY_SKAFFOLD_CONFIG_URI = env_str("CLOUD_DEPLOY_SKAFFOLD_CONFIG_URI")
CLOUD_DEPLOY_READY_TIMEOUT = env_int("CLOUD_DEPLOY_READY_TIMEOUT", 900, minimum=1)  # seconds

# --- e-mail ---------------------------------------------------------------------------
vars().update(_env.email_url_config(env_str("EMAIL_URL", "consolemail://")))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "governance-portal@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- outside systems (switches; each adapter says what it needs) -----------------------
GOOGLE_CLOUD_PROJECT = env_str("GOOGLE_CLOUD_PROJECT")
GOOGLE_CLOUD_REGION = env_str("GOOGLE_CLOUD_REGION", "europe-west1")
# Vertex AI endpoint override (a stand-in server); empty means the region's own host.
VERTEX_API_ENDPOINT = env_str("VERTEX_API_ENDPOINT")
# Where training runs execute: the local runner, or Vertex AI Pipelines.
PIPELINES_BACKEND = env_choice("PIPELINES_BACKEND", "local", ["local", "vertex"])
VERTEX_PIPELINE_ROOT = env_str("VERTEX_PIPELINE_ROOT")  # gs:// root of pipeline outputs
VERTEX_ARTIFACT_ROOT = env_str("VERTEX_ARTIFACT_ROOT")  # gs:// root of model artifacts
VERTEX_PIPELINES_IMAGE = env_str("VERTEX_PIPELINES_IMAGE")  # training image, by digest
VERTEX_SERVING_IMAGE = env_str("VERTEX_SERVING_IMAGE")  # image registered with the model
VERTEX_SERVICE_ACCOUNT = env_str("VERTEX_SERVICE_ACCOUNT")
# The Secret Manager secret version holding DSAR_SUPPRESSION_KEY, which a training job
# reads to apply the suppression list (projects/P/secrets/S/versions/V, or a regional
# secret's projects/P/locations/L/secrets/S/versions/V); the job's
# service account needs roles/secretmanager.secretAccessor on that secret. Empty: a
# Vertex AI run with a suppression list is refused.
VERTEX_SUPPRESSION_KEY_SECRET = env_str("VERTEX_SUPPRESSION_KEY_SECRET")
if VERTEX_SUPPRESSION_KEY_SECRET and not re.fullmatch(
    r"projects/[^/]+/(locations/[^/]+/)?secrets/[^/]+/versions/[^/]+",
    VERTEX_SUPPRESSION_KEY_SECRET,
):
    raise ImproperlyConfigured(
        "VERTEX_SUPPRESSION_KEY_SECRET must name a secret version (projects/P/secrets/S/"
        "versions/V, or projects/P/locations/L/secrets/S/versions/V for a regional secret)"
    )
if PIPELINES_BACKEND == "vertex":
    _missing = [
        name
        for name in ("GOOGLE_CLOUD_PROJECT", "VERTEX_PIPELINE_ROOT", "VERTEX_ARTIFACT_ROOT")
        if not globals()[name]
    ]
    if _missing:
        raise ImproperlyConfigured(f"PIPELINES_BACKEND=vertex needs {', '.join(_missing)}")
    if "@sha256:" not in VERTEX_PIPELINES_IMAGE:
        raise ImproperlyConfigured(
            "VERTEX_PIPELINES_IMAGE must name the training image by digest (...@sha256:...)"
        )

# Deployment gate attestations: a JSON list of {"kid", "pem"} private keys, the first
# signs and all are published at /.well-known/jwks.json (format in portal/attestation.py).
ATTESTATION_SIGNING_KEYS = attestation_keys_parse(env_str("ATTESTATION_SIGNING_KEYS"))
if not DEBUG and not ATTESTATION_SIGNING_KEYS:
    raise ImproperlyConfigured("ATTESTATION_SIGNING_KEYS must be set when DJANGO_DEBUG=false")
# How long one gate attestation stays valid (never past the approval's own expiry,
# which it carries in its `approval_expires_at` claim): an attestation handed out before
# the evidence changed stops verifying soon after.
ATTESTATION_TTL_MINUTES = env_int("ATTESTATION_TTL_MINUTES", 15, minimum=1)

# Pub/Sub push subscriptions (Cloud Deploy approvals): the OIDC token Google attaches
# must be for this audience and signed for this service account.
PUBSUB_PUSH_AUDIENCE = env_str("PUBSUB_PUSH_AUDIENCE", f"{PORTAL_BASE_URL}/hooks/clouddeploy")
PUBSUB_PUSH_SERVICE_ACCOUNT = env_str("PUBSUB_PUSH_SERVICE_ACCOUNT")
# Refused pushes one client address may send per minute before the hook answers 429.
HOOK_REFUSAL_LIMIT = env_int("HOOK_REFUSAL_LIMIT", 20, minimum=1)
# The bearer token Alertmanager sends to POST /hooks/alertmanager (its webhook
# http_config.authorization.credentials). Empty: the hook refuses every notification.
ALERTMANAGER_WEBHOOK_TOKEN = env_str("ALERTMANAGER_WEBHOOK_TOKEN")
# The bearer token Prometheus sends to GET /metrics (a PodMonitoring's
# endpoints[].authorization). /metrics carries every model's quality and drift figures,
# which the monitoring pages show only to signed-in roles, and it is reachable through
# the load balancer. Empty: /metrics answers anyone (the local demo's Prometheus).
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN")
# Where the generated alert rules point their runbook links (the portal's monitoring
# page of the model, anchored at the metric). Fixed, not PORTAL_BASE_URL, so the
# committed rules file is the same on every machine.
MONITORING_RUNBOOK_BASE_URL = env_str(
    "MONITORING_RUNBOOK_BASE_URL", "https://governance.zeromargin.example/monitoring"
).rstrip("/")
# Prometheus's HTTP API (a local server, or Managed Service for Prometheus through its
# frontend proxy), how long the dashboards wait for it, and how long answers are cached.
PROMETHEUS_URL = env_str("PROMETHEUS_URL", "http://127.0.0.1:9090").rstrip("/")
PROMETHEUS_TIMEOUT_SECONDS = env_int("PROMETHEUS_TIMEOUT_SECONDS", 5, minimum=1)
MONITORING_CACHE_SECONDS = env_int("MONITORING_CACHE_SECONDS", 30, minimum=0)
# Grafana's base URL, for links from the monitoring pages to the generated dashboard
# (deploy/grafana/models-dashboard.json, uid portal-models); empty: no links.
GRAFANA_URL = env_str("GRAFANA_URL").rstrip("/")
# The model server's prediction log (`python -m serving --prediction-log-dir`) and the
# ground truth outcomes (`simulate_traffic`, or the client's sales and click feeds):
# one JSON line per prediction or outcome, in <dir>/<model>/<YYYY-MM-DD>.jsonl.
MONITORING_PREDICTION_LOG_DIR = Path(
    env_str("MONITORING_PREDICTION_LOG_DIR", str(VAR_DIR / "predictions"))
)
MONITORING_OUTCOME_DIR = Path(env_str("MONITORING_OUTCOME_DIR", str(VAR_DIR / "outcomes")))
# The quality and drift job (every five minutes) evaluates the last WINDOW_MINUTES of
# served predictions, the window's end rounded down to WINDOW_STEP_SECONDS.
MONITORING_WINDOW_MINUTES = env_int("MONITORING_WINDOW_MINUTES", 60, minimum=1)
MONITORING_WINDOW_STEP_SECONDS = env_int("MONITORING_WINDOW_STEP_SECONDS", 300, minimum=1)

# Refused requests are counted per (kind, source, window of this many seconds); only
# the first of each window is written to the audit ledger.
SECURITY_REFUSAL_WINDOW_SECONDS = env_int("SECURITY_REFUSAL_WINDOW_SECONDS", 600, minimum=1)
# Windows (so ledger rows) callers with no account may open per kind of refusal and
# window; past it their refusals are counted together under `ip:*` (portal.security).
SECURITY_ANONYMOUS_WINDOWS_PER_KIND = env_int("SECURITY_ANONYMOUS_WINDOWS_PER_KIND", 50, minimum=1)
GOOGLE_OIDC_CERTS_URL = env_str(
    "GOOGLE_OIDC_CERTS_URL", "https://www.googleapis.com/oauth2/v1/certs"
)
# Cloud Deploy's API: empty means Google's; a URL only to point at a stand-in server.
CLOUD_DEPLOY_API_ENDPOINT = env_str("CLOUD_DEPLOY_API_ENDPOINT")
# Binary Authorization attestor (projects/{p}/attestors/{a}) attesting images the board
# approved for production; empty keeps the signed attestation in the portal only.
BINAUTHZ_ATTESTOR = env_str("BINAUTHZ_ATTESTOR")
if BINAUTHZ_ATTESTOR and not re.fullmatch(r"projects/[^/]+/attestors/[^/]+", BINAUTHZ_ATTESTOR):
    raise ImproperlyConfigured("BINAUTHZ_ATTESTOR must look like projects/PROJECT/attestors/NAME")
# The deployment reconciler (monitoring.reconcile_deployments, every 5 minutes) reads
# what the cluster runs from this Kubernetes API: "in-cluster" (the worker's service
# account, deploy/k8s), a URL (`kubectl proxy`, or a stand-in), or empty: off.
RECONCILER_KUBERNETES_API = env_str("RECONCILER_KUBERNETES_API").rstrip("/")
if RECONCILER_KUBERNETES_API and not (
    RECONCILER_KUBERNETES_API == "in-cluster"
    or re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", RECONCILER_KUBERNETES_API)
):
    raise ImproperlyConfigured(
        "RECONCILER_KUBERNETES_API must be empty, in-cluster or an http(s) URL"
    )
RECONCILER_TIMEOUT_SECONDS = env_int("RECONCILER_TIMEOUT_SECONDS", 20, minimum=1)
# Container Analysis and Binary Authorization APIs: empty means Google's (stand-ins only).
CONTAINER_ANALYSIS_API_ENDPOINT = env_str("CONTAINER_ANALYSIS_API_ENDPOINT")
BINAUTHZ_API_ENDPOINT = env_str("BINAUTHZ_API_ENDPOINT")
# The audit ledger's copy in Cloud Logging (portal.audit.exporting): the project whose
# log receives every event (empty: the ledger stays in the database only), the log's
# name (lock it with a bucket's retention rules), the API (empty: Google's; a URL only to
# point at a stand-in), and how many events one entries:write carries.
AUDIT_CLOUD_LOGGING_PROJECT = env_str("AUDIT_CLOUD_LOGGING_PROJECT")
AUDIT_CLOUD_LOGGING_LOG = env_str("AUDIT_CLOUD_LOGGING_LOG", "portal-audit-ledger")
if not re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", AUDIT_CLOUD_LOGGING_LOG):
    raise ImproperlyConfigured(
        "AUDIT_CLOUD_LOGGING_LOG may hold letters, digits, _ - . / only (at most 200)"
    )
CLOUD_LOGGING_API_ENDPOINT = env_str("CLOUD_LOGGING_API_ENDPOINT")
AUDIT_EXPORT_BATCH_SIZE = env_int("AUDIT_EXPORT_BATCH_SIZE", 500, minimum=1)
# Cloud Deploy target id -> portal target, a JSON object; a rollout waiting for approval
# on a target not listed here opens no review (the push is recorded as refused).
try:
    CLOUD_DEPLOY_TARGETS = json.loads(
        env_str(
            "CLOUD_DEPLOY_TARGETS",
            '{"ml-staging": "staging", "ml-canary": "canary", "ml-production": "production"}',
        )
    )
except ValueError as exc:
    raise ImproperlyConfigured("CLOUD_DEPLOY_TARGETS must be a JSON object") from exc
if not isinstance(CLOUD_DEPLOY_TARGETS, dict) or not all(
    isinstance(key, str) and value in ("staging", "canary", "production")
    for key, value in CLOUD_DEPLOY_TARGETS.items()
):
    raise ImproperlyConfigured(
        "CLOUD_DEPLOY_TARGETS must map Cloud Deploy target ids to staging, canary or production"
    )

# Webhook hosts allowed although they resolve to private or loopback addresses (an
# on-premises receiver); every other such host is refused.
WEBHOOK_PRIVATE_HOSTS = env_list("WEBHOOK_PRIVATE_HOSTS")

# --- internationalisation, static files -----------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# Exports made in the background (card PDFs, evidence packs), served only through the
# portal's permission-checked download view. Web pods and workers must share it: on GKE a
# volume both mount (or a bucket through a storage backend).
EXPORTS_DIR = Path(env_str("EXPORTS_DIR", str(VAR_DIR / "exports")))
EXPORT_RETENTION_HOURS = env_int("EXPORT_RETENTION_HOURS", 72, minimum=1)
# A model card's PDF is printed inside the request up to these sizes (performance rows,
# characters of text), measured to stay within a few seconds (bench/card_pdf.py);
# bigger cards are printed by a worker as an export job.
CARD_PDF_SYNC_MAX_ROWS = env_int("CARD_PDF_SYNC_MAX_ROWS", 300, minimum=0)
CARD_PDF_SYNC_MAX_CHARACTERS = env_int("CARD_PDF_SYNC_MAX_CHARACTERS", 30000, minimum=0)
# --- data subject requests (GDPR) ---------------------------------------------------------
# Private files of the requests (agents' proofs, access packages, certificates), served
# only through the permission-checked views; web pods and workers must share it.
DSAR_FILES_DIR = Path(env_str("DSAR_FILES_DIR", str(VAR_DIR / "datasubjects")))
DSAR_REMINDER_DAYS = env_int("DSAR_REMINDER_DAYS", 7, minimum=0)
DSAR_STATUS_LINK_DAYS = env_int("DSAR_STATUS_LINK_DAYS", 30, minimum=1)
DSAR_PACKAGE_LINK_HOURS = env_int("DSAR_PACKAGE_LINK_HOURS", 72, minimum=1)
# Requests filed per hour from one address and from one client IP.
DSAR_RATE_LIMIT_PER_ADDRESS = env_int("DSAR_RATE_LIMIT_PER_ADDRESS", 5, minimum=1)
DSAR_RATE_LIMIT_PER_IP = env_int("DSAR_RATE_LIMIT_PER_IP", 20, minimum=1)
# The suppression list (pipelines.suppression) the portal writes for the training
# pipelines and the model server: people left out of training, profiling and
# personalisation (GDPR Arts. 17, 18, 21, withdrawn consent). Empty: suppression.json in
# PIPELINES_LAKE_ROOT, beside the snapshots it filters.
DSAR_SUPPRESSION_LIST = env_str("DSAR_SUPPRESSION_LIST", "")
# The key of the customer keys on that list (hex, at least 32 bytes): a secret shared
# with the list's readers only (the file names it by id). Unset: derived from
# SECRET_KEY, the key every list before it was used (keep it, or the hashes of people
# already listed no longer match; deploy/README.md says how to read it out).
DSAR_SUPPRESSION_KEY = env_str("DSAR_SUPPRESSION_KEY", "")
if DSAR_SUPPRESSION_KEY and (
    not re.fullmatch(r"(?:[0-9a-fA-F]{2}){32,}", DSAR_SUPPRESSION_KEY.strip())
):
    raise ImproperlyConfigured("DSAR_SUPPRESSION_KEY must be at least 32 bytes as hex (64 digits)")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "exports": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": EXPORTS_DIR},
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- security headers -----------------------------------------------------------------
# No inline script or style anywhere: everything is served from /static/.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF, *([GOOGLE_OAUTH2_AUTH_URL] if SSO_ENABLED else [])],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_MAX_AGE_SECONDS", 8 * 3600, minimum=300)
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Kubernetes probes and Prometheus scrape over plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- logging --------------------------------------------------------------------------
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ["text", "json"])
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ["debug", "info", "warning", "error"]).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "severity"},
        },
    },
    "filters": {
        "client_errors": {"()": "portal.logfilters.ClientErrorWithoutTraceback"},
        "pool_worker_stopped": {"()": "portal.logfilters.PoolWorkerStoppedIsInformation"},
        "answers": {"()": "portal.logfilters.AnswersNotRefusals"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print each of its records a second time.
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # The gate's "not yet" is an answer, not a refused caller: not a warning.
        "django.request": {"filters": ["answers"]},
        "axes": {"level": "WARNING"},
        # Celery's pool (billiard) logs here; a worker stopped with SIGTERM is no error.
        "multiprocessing": {"filters": ["pool_worker_stopped"], "propagate": False},
        "weasyprint": {"level": "WARNING"},
        # The filesystem broker has no host: kombu's "No hostname was supplied" is noise.
        "kombu.connection": {
            "level": "ERROR" if CELERY_BROKER_URL.startswith("filesystem://") else "WARNING"
        },
    },
}
# What a worker's task prints (the console e-mail backend's messages) is information,
# not a warning.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"

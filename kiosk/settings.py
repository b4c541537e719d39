"""Settings for the kiosk payment back end, read from the environment (and an optional `.env`).

Every variable is documented in `.env.example` and in docs/operations.md's configuration table.
"""

import hashlib
import os
import secrets
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]
# `.env` is the checkout's own configuration (`make run` writes one with DEBUG and a generated key, so every
# manage.py command works without extra variables). Tests ignore it: they must not depend on a developer's file.
if not TESTING:
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
DEBUG = env.bool("DEBUG", default=False)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")
    # Development and tests only: a random key kept in an ignored file, so it never lives in the repo
    # and JWTs and sessions survive a restart of `make run`.
    path = BASE_DIR / ".dev-secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        return key


SECRET_KEY = _secret_key()
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# The host of SITE_URL is always allowed: the simulator's notifications and pay page use that address.
ALLOWED_HOSTS = [
    *env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]),
    urlsplit(SITE_URL).hostname or "localhost",
]
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "axes",
    "django_prometheus",
    "csp",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "kiosk",
    "kiosk.events",
    "orders",
    "payments",
    "payments.simulator",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "kiosk.middleware.RequestIdMiddleware",
    "kiosk.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # after authentication, as django-axes asks
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# Brute force (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one user name, or from one address,
# logins there are refused (429 + Retry-After) for LOGIN_LOCKOUT_MINUTES; a success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "kiosk.auth.lockout_response"
AXES_CLIENT_IP_CALLABLE = "kiosk.auth.client_ip"
AXES_VERBOSE = False

# Where the back office lives ("admin/" by default). Another path keeps bots that try /admin/ off the login page.
ADMIN_URL = env.str("ADMIN_URL", default="admin").strip("/") + "/"
if ADMIN_URL == "/" or not all(part.replace("-", "").replace("_", "").isalnum() for part in ADMIN_URL[:-1].split("/")):
    raise ImproperlyConfigured("ADMIN_URL must be a path such as 'admin' or 'back-office' (letters, digits, - and _).")

ROOT_URLCONF = "kiosk.urls"
WSGI_APPLICATION = "kiosk.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.mysql":
    _db.setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO'",
            "isolation_level": "read committed",
        }
    )
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions make concurrent writers queue instead of failing with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file, not :memory:, so the live-server tests' threads each get a connection of their own; one per
    # process, so two test runs at once never share it.
    _db["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"kiosk-test-{os.getpid()}.sqlite3")}
else:
    raise ImproperlyConfigured("DATABASE_URL must be sqlite:// or mysql:// (MySQL 8 / MariaDB 10.6+).")
# django-prometheus's wrappers of the same backends: query counts and errors by database for /metrics.
_db["ENGINE"] = _db["ENGINE"].replace("django.db.backends.", "django_prometheus.db.backends.")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- Internationalisation -------------------------------------------------------------------------
LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", "Português (Brasil)"), ("en", "English")]
TIME_ZONE = "America/Sao_Paulo"
USE_I18N = True
# Our own catalogues (locale/pt_BR/LC_MESSAGES/django.po and djangojs.po), compiled by the build.
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The screens' scripts, styles and pictures (static/screens/).
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security -------------------------------------------------------------------------------------
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG and not TESTING)
# Served over TLS (by the proxy): plain HTTP is redirected and browsers are told to stay on HTTPS. Off without
# a TLS proxy (make run, make bench, compose.yaml), where a redirect would lead nowhere.
_TLS = BEHIND_TLS_PROXY and not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_TLS)
# The probes and the metrics scraper speak plain HTTP to the pod: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _TLS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy (django-csp) on every answer: our pages load scripts, styles and images only from
# this site (the admin, the reports, Swagger UI from drf-spectacular-sidecar, the simulator's pay page); the
# inline <style> blocks of our own templates carry the request's nonce. CSP_REPORT_URI collects violations.
_CSP_REPORT = env.str("CSP_REPORT_URI", default="")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        # https: too: a product's image_url is an absolute URL, and a menu's pictures often live on a CDN
        # (images cannot run code; scripts, styles and connections stay this site's own).
        "img-src": [SELF, "data:", "https:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        **({"report-uri": [_CSP_REPORT]} if _CSP_REPORT else {}),
    }
}
X_FRAME_OPTIONS = "DENY"
# Largest request body the API accepts; an order with 50 lines and notes is far below this.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, 2_621_440)

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "kiosk.api.ProblemJSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PARSER_CLASSES": ["kiosk.api.StrictJSONParser"],
    # Escape non-ASCII in responses: a lone surrogate echoed back in an error can then never crash rendering.
    "UNICODE_JSON": False,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kiosk.problems.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "kiosk.api.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Only where a view asks (kiosk/api.py): 429 problem+json with Retry-After beyond these.
    "DEFAULT_THROTTLE_RATES": {
        "pickup_board": env.str("THROTTLE_PICKUP_BOARD", default="120/min"),
        "cpf_lookup": env.str("THROTTLE_CPF_LOOKUP", default="30/min"),
    },
}

# Throttle counters (and nothing else yet). In-process by default: with N processes a client gets N times the
# rate. CACHE_URL=redis://host:6379/0 shares them between processes and pods.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://kiosk")}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "UPDATE_LAST_LOGIN": False,
    # A refresh token works once: refreshing returns a new one and blacklists the used one.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # Tokens carry a fingerprint of the password: changing it revokes every token of the user.
    "CHECK_REVOKE_TOKEN": True,
    "CHECK_USER_IS_ACTIVE": True,
    "TOKEN_OBTAIN_SERIALIZER": "kiosk.auth.TokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "kiosk.auth.RefreshSerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "kiosk.auth.TokenBlacklistSerializer",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Kiosk payments API",
    "DESCRIPTION": "Self-service kiosk orders, kitchen queue and Mercado Pago QR payments.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every error documented as problem+json with its codes, the headers operations read (kiosk/openapi.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "kiosk.openapi.postprocess"],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.Order.Status",
        "PaymentStatusEnum": "payments.models.Payment.Status",
        "KioskPaymentStatusEnum": "payments.selectors.KIOSK_STATUSES",
        "RefundStatusEnum": "payments.models.Refund.Status",
        "PaymentMethodEnum": "payments.models.Payment.Method",
        "KitchenStatusEnum": ["in_preparation", "ready", "completed"],
    },
}

# --- Domain settings ------------------------------------------------------------------------------
IDEMPOTENCY_KEY_TTL = timedelta(hours=env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24))
# A request still "processing" after this long is taken to have died with its process.
IDEMPOTENCY_STALE_AFTER = timedelta(seconds=env.int("IDEMPOTENCY_STALE_SECONDS", default=120))
# Unpaid orders older than this are cancelled by `manage.py cancel_stale_orders`, releasing their stock.
ORDER_PAYMENT_TIMEOUT = timedelta(minutes=env.int("ORDER_PAYMENT_TIMEOUT_MINUTES", default=30))

# The public pickup board shows orders placed within this many hours.
PICKUP_BOARD_WINDOW = timedelta(hours=env.int("PICKUP_BOARD_HOURS", default=12))
# LGPD: customers with no order for this many days are anonymised (orders/privacy.py); 5 years, see docs/security.md.
CUSTOMER_RETENTION_DAYS = env.int("CUSTOMER_RETENTION_DAYS", default=1825)

# --- Background work (kiosk/jobs.py, kiosk/worker.py) ---------------------------------------------
# Tasks are rows in this database (django-tasks-db): enqueued in the service's transaction, run by
# `manage.py run_worker` (started by `make run`; its own process in production).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=5.0)
# A worker silent this long is dead: the tasks it left running are queued again, worker_status fails.
WORKER_STALE_SECONDS = env.int("WORKER_STALE_SECONDS", default=60)
# /readyz always reports the live workers; with this on it also answers 503 when none is alive. Off by
# default: a stopped worker must not take the web pods (and the kiosks' orders) out of the load balancer.
READYZ_REQUIRE_WORKER = env.bool("READYZ_REQUIRE_WORKER", default=False)
# `/metrics` wants `Authorization: Bearer <METRICS_TOKEN>`; unset, it is open with DEBUG on and off (404) without.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
TASKS_KEEP_SUCCEEDED_DAYS = env.int("TASKS_KEEP_SUCCEEDED_DAYS", default=7)
# The periodic jobs' intervals in seconds (0 turns one off, for instance when cron runs the command instead).
SCHEDULE_RECONCILE_SECONDS = env.int("SCHEDULE_RECONCILE_SECONDS", default=60)
SCHEDULE_CANCEL_STALE_SECONDS = env.int("SCHEDULE_CANCEL_STALE_SECONDS", default=60)
SCHEDULE_RETRY_NOTIFICATIONS_SECONDS = env.int("SCHEDULE_RETRY_NOTIFICATIONS_SECONDS", default=30)
SCHEDULE_SWEEP_DELIVERIES_SECONDS = env.int("SCHEDULE_SWEEP_DELIVERIES_SECONDS", default=30)
SCHEDULE_PURGE_SECONDS = env.int("SCHEDULE_PURGE_SECONDS", default=3600)
SCHEDULE_ANONYMISE_SECONDS = env.int("SCHEDULE_ANONYMISE_SECONDS", default=86400)

# --- Outgoing webhooks (kiosk/events) -------------------------------------------------------------
# Seconds to connect and to read a subscriber's answer; attempts before a delivery is dead.
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=5.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=10.0)
# Subscriber URLs may not point at private, loopback or link-local addresses (SSRF), except in these networks
# (CIDR list). `make run` (DEBUG) and the tests allow loopback, for a subscriber on the same machine.
WEBHOOK_ALLOWED_NETWORKS = env.list(
    "WEBHOOK_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"] if DEBUG or TESTING else []
)

# --- Mercado Pago ---------------------------------------------------------------------------------
# With an access token: live mode, the official SDK talks to MERCADOPAGO_API_BASE_URL. Without one: simulator
# mode, the same SDK talks in-process to our Mercado Pago simulator (payments/simulator), served at /mp-simulator/.
MERCADOPAGO_ACCESS_TOKEN = env.str("MERCADOPAGO_ACCESS_TOKEN", default="")
MERCADOPAGO_SIMULATOR = not MERCADOPAGO_ACCESS_TOKEN
if MERCADOPAGO_SIMULATOR and not (DEBUG or TESTING or env.bool("MERCADOPAGO_SIMULATOR", default=False)):
    # The simulator lets anyone "pay" any order: never by accident on a real server.
    raise ImproperlyConfigured(
        "No MERCADOPAGO_ACCESS_TOKEN: set it for live mode, or MERCADOPAGO_SIMULATOR=true to run the "
        "Mercado Pago simulator with DEBUG off (demos only)."
    )
MERCADOPAGO_API_BASE_URL = env.str("MERCADOPAGO_API_BASE_URL", default="https://api.mercadopago.com").rstrip("/")
MERCADOPAGO_WEBHOOK_SECRET = env.str("MERCADOPAGO_WEBHOOK_SECRET", default="")
if not MERCADOPAGO_WEBHOOK_SECRET:
    if not MERCADOPAGO_SIMULATOR:
        raise ImproperlyConfigured(
            "MERCADOPAGO_WEBHOOK_SECRET (the application's secret signature) is required with an access token."
        )
    # The simulator signs and we verify in the same installation: a secret derived from SECRET_KEY will do.
    MERCADOPAGO_WEBHOOK_SECRET = hashlib.sha256(f"mp-simulator:{SECRET_KEY}".encode()).hexdigest()
MERCADOPAGO_NOTIFICATION_URL = env.str(
    "MERCADOPAGO_NOTIFICATION_URL", default=f"{SITE_URL}/api/v1/webhooks/mercadopago/"
)
# Minutes a dynamic QR stays payable (Mercado Pago's expiration_time; its default is 15).
MERCADOPAGO_QR_EXPIRATION = timedelta(minutes=env.int("MERCADOPAGO_QR_EXPIRATION", default=15))
MERCADOPAGO_TIMEOUT = env.float("MERCADOPAGO_TIMEOUT", default=4.0)  # seconds per HTTP call
MERCADOPAGO_MAX_RETRIES = env.int("MERCADOPAGO_MAX_RETRIES", default=2)  # extra attempts on transient failures
MERCADOPAGO_BREAKER_THRESHOLD = env.int("MERCADOPAGO_BREAKER_THRESHOLD", default=5)  # failures in a row
MERCADOPAGO_BREAKER_COOLDOWN = env.int("MERCADOPAGO_BREAKER_COOLDOWN", default=30)  # seconds open
# Largest age (seconds) of a notification's x-signature ts; 0 (the default) turns the check off. Off, because
# Mercado Pago re-sends a failed notification for days and a genuine re-send must not be refused; a replayed
# notification is harmless anyway (it only makes us read the order from Mercado Pago again).
MERCADOPAGO_SIGNATURE_TOLERANCE = env.int("MERCADOPAGO_SIGNATURE_TOLERANCE", default=0)
# reconcile_payments also re-reads payments settled within this many days, each at most every N hours.
MERCADOPAGO_RECONCILE_SETTLED_FOR = timedelta(days=env.int("MERCADOPAGO_RECONCILE_SETTLED_DAYS", default=2))
MERCADOPAGO_RECONCILE_SETTLED_EVERY = timedelta(hours=env.int("MERCADOPAGO_RECONCILE_SETTLED_HOURS", default=6))
# A QR may still be paid a little after its expiry (the buyer pressed "pay" just in time): cancel_stale_orders
# leaves its order alone for this long after the QR's own expiry.
MERCADOPAGO_QR_GRACE = timedelta(seconds=env.int("MERCADOPAGO_QR_GRACE_SECONDS", default=120))
# Notification URL under junk: rejected deliveries from one client address per minute before it answers 429
# (and stores nothing), and days rejected deliveries are kept before `purge_notifications` deletes them.
MERCADOPAGO_WEBHOOK_INVALID_PER_MINUTE = env.int("MERCADOPAGO_WEBHOOK_INVALID_PER_MINUTE", default=30)
MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS = env.int("MERCADOPAGO_WEBHOOK_KEEP_REJECTED_DAYS", default=7)
# The simulator's clock (simulator mode only). Like Mercado Pago, it sends a notification some time after the
# call that caused it has answered (NOTIFY_DELAY seconds), and answers a refund "processing" and settles it
# REFUND_DELAY seconds later. AUTOPUMP: a background thread in each process sends and settles what is due;
# off, nothing happens until someone calls notify.send_due() / engine.confirm_refunds() (the tests' fixture).
MERCADOPAGO_SIMULATOR_NOTIFY_DELAY = env.float("MERCADOPAGO_SIMULATOR_NOTIFY_DELAY", default=1.0)
MERCADOPAGO_SIMULATOR_REFUND_DELAY = env.float("MERCADOPAGO_SIMULATOR_REFUND_DELAY", default=3.0)
MERCADOPAGO_SIMULATOR_AUTOPUMP = env.bool("MERCADOPAGO_SIMULATOR_AUTOPUMP", default=True)

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# json: one object per line (time, level, logger, message, request_id, route...), for production's log
# collectors; plain: readable lines for a developer's terminal (the default with DEBUG on).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "mask_pii": {"()": "kiosk.logging.MaskPIIFilter"},
        "request_id": {"()": "kiosk.logging.RequestIdFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "kiosk.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(route)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "mask_pii"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # APScheduler says "Added job" for every periodic job at each worker start: only its warnings matter.
        "apscheduler": {"level": "WARNING"},
        # runserver's request lines (make run) through the same handler: masked, JSON when asked.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

"""Dexter settings. Everything a deployment changes comes from the environment.

The table of every setting and its default is in README.md ("Configuration").
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once into an ignored file."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = Path(os.environ.get("SECRET_KEY_FILE", BASE_DIR / ".secret_key"))
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    # Swagger UI's files served from our own static files: /api/docs/ works offline and is pinned.
    "drf_spectacular_sidecar",
    "channels",
    "realtime",
    "issues",
    "alerts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dexter.urls"
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
WSGI_APPLICATION = None
ASGI_APPLICATION = "dexter.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Kept between requests by the HTTP threads of dexter/http.py and the
        # consumers' database thread; a broken one is replaced on next use.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (the server, a worker, `manage.py shell`) write the same
    # file: WAL lets readers go on while one writes, IMMEDIATE takes the write
    # lock at BEGIN so two writers queue instead of failing with "database is
    # locked" on lock upgrade, and 20 s is how long a writer waits its turn.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or None}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Only for deployments that run collectstatic; WhiteNoise finds files in the apps without it.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
# WhiteNoise serves static files straight from the apps under daphne: no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Channel layer: in-process by default, Redis for more than one server process.
REDIS_URL = os.environ.get("REDIS_URL") or None
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000)},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000)},
        }
    }

# --- REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "dexter.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    # JSON only, with a size and a depth bound (dexter/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["dexter.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # The client address of the per-address throttles: REMOTE_ADDR unless the
    # server sits behind that many proxies (then the X-Forwarded-For entry they
    # added). Without it, any client could pick its address with a header.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "realtime_publish": os.environ.get("REALTIME_PUBLISH_THROTTLE", "600/min"),
        "events": os.environ.get("EVENTS_THROTTLE", "6000/min"),
    },
}
# Bodies past this many bytes are 413 (Django's own setting and default, which DRF's parser ignored).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2621440)
# Containers nested past this in a JSON body are 400 (1000 levels gave a RecursionError).
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 64)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 500)
# POST /api/auth/token/ attempts, right or wrong (dexter/throttles.py); past them, 429.
AUTH_TOKEN_RATE_PER_USERNAME = os.environ.get("AUTH_TOKEN_RATE_PER_USERNAME", "10/min")
AUTH_TOKEN_RATE_PER_ADDRESS = os.environ.get("AUTH_TOKEN_RATE_PER_ADDRESS", "30/min")
# The throttles' counters: this process's memory, or Redis (shared by every server) when there is one.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_LIFETIME", 300)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_REFRESH_LIFETIME", 86400)),
    "UPDATE_LAST_LOGIN": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Dexter API",
    "DESCRIPTION": "Issues, alerts, events and the real-time layer of Dexter.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "dexter.schema.add_error_responses",
    ],
}

# --- Real-time layer (docs/protocol.md section 9; README "Configuration")
WEBSOCKET_ENABLED = env_bool("WEBSOCKET_ENABLED", True)
WEBSOCKET_HEARTBEAT_INTERVAL = env_float("WEBSOCKET_HEARTBEAT_INTERVAL", 30)
WEBSOCKET_MAX_CONNECTIONS = env_int("WEBSOCKET_MAX_CONNECTIONS", 1000)
WEBSOCKET_MAX_SUBSCRIPTIONS = env_int("WEBSOCKET_MAX_SUBSCRIPTIONS", 100)
WEBSOCKET_MAX_MESSAGE_SIZE = env_int("WEBSOCKET_MAX_MESSAGE_SIZE", 65536)
WEBSOCKET_ALLOWED_ORIGINS = env_list("WEBSOCKET_ALLOWED_ORIGINS", [])
WEBSOCKET_CONNECT_RATE = env_int("WEBSOCKET_CONNECT_RATE", 60)
WEBSOCKET_MESSAGE_RATE = env_float("WEBSOCKET_MESSAGE_RATE", 20)
WEBSOCKET_PRESENCE_GRACE = env_float("WEBSOCKET_PRESENCE_GRACE", 5)
WEBSOCKET_SEND_QUEUE_LIMIT = env_int("WEBSOCKET_SEND_QUEUE_LIMIT", 1000)
WEBSOCKET_SEND_BUFFER_LIMIT = env_int("WEBSOCKET_SEND_BUFFER_LIMIT", 1048576)
REALTIME_SSE_PING_INTERVAL = env_float("REALTIME_SSE_PING_INTERVAL", 15)
REALTIME_SSE_RETRY = env_int("REALTIME_SSE_RETRY", 2000)
WEBSOCKET_BATCH_TICK = env_float("WEBSOCKET_BATCH_TICK", 0.02)
WEBSOCKET_COMPRESSION = env_bool("WEBSOCKET_COMPRESSION", False)
REALTIME_MAX_PUBLICATION_SIZE = env_int("REALTIME_MAX_PUBLICATION_SIZE", 65536)
REALTIME_HISTORY_SIZE = env_int("REALTIME_HISTORY_SIZE", 1000)
REALTIME_HISTORY_TTL = env_int("REALTIME_HISTORY_TTL", 86400)
REALTIME_POLL_INTERVAL = env_float("REALTIME_POLL_INTERVAL", 2.0 if REDIS_URL else 0.25)
REALTIME_DOORBELL = os.environ.get("REALTIME_DOORBELL") or "auto"
ISSUES_COUNT_COALESCE_SECONDS = env_float("ISSUES_COUNT_COALESCE_SECONDS", 1.0)
ISSUES_EVENTS_BATCH_LIMIT = env_int("ISSUES_EVENTS_BATCH_LIMIT", 1000)
REALTIME_NO_HISTORY = env_list("REALTIME_NO_HISTORY", [])
REALTIME_GC_FREEZE = env_bool("REALTIME_GC_FREEZE", True)
REALTIME_LAYER_RETRY_MAX = env_float("REALTIME_LAYER_RETRY_MAX", 30)
REALTIME_CHANNEL_POLICY = os.environ.get("REALTIME_CHANNEL_POLICY", "realtime.policy.default_policy")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "realtime": {"level": os.environ.get("REALTIME_LOG_LEVEL", "INFO")},
        "django.channels.server": {"level": "INFO"},
    },
}

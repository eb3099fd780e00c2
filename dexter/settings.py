"""Dexter settings. Everything a deployment changes comes from the environment.

The table of every setting and its default is in README.md ("Configuration").
A ``.env`` file beside manage.py is read when present (python-dotenv); a
variable already in the environment wins over it. A bad value is reported by
the system check ``realtime.E001`` in one line (realtime/conf.py).
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

from realtime.conf import env

BASE_DIR = Path(__file__).resolve().parent.parent
# override=False: the environment wins over the file.
load_dotenv(os.environ.get("DEXTER_ENV_FILE") or BASE_DIR / ".env", override=False)

# realtime.conf's readers: a bad value falls back to the default and is reported
# by the system check in one line, instead of a traceback at import.
env_bool = env.bool
env_int = env.int
env_float = env.float
env_list = env.list


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
    # Logout and revocation: blacklisted refresh tokens end their session (realtime/revocation.py).
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "csp",
    # Swagger UI's files served from our own static files: /api/docs/ works offline and is pinned.
    "drf_spectacular_sidecar",
    "channels",
    "realtime",
    "issues",
    "alerts",
]

# --- Behind TLS (README "Deploying behind TLS"): all off by default, so `make run`
# on plain http works; a TLS deployment turns them on with environment variables
# and `manage.py check --deploy` is then clean (tests/test_deployment.py).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Paths (regular expressions) served over plain http even with the redirect on, e.g. a health check.
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", [])
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# Behind a proxy that ends TLS: "HTTP_X_FORWARDED_PROTO,https" (only if the proxy always sets that header).
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER", [])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header[:2]) if len(_proxy_ssl_header) >= 2 else None

# The Content-Security-Policy of the pages (django-csp): the dashboard loads its
# script, styles and data from this origin only and runs no inline code, so
# nothing else is allowed. The admin and the Swagger UI (Django's and
# drf-spectacular's templates, which use inline code) keep their own rules.
# CSP_CONNECT_SRC adds origins the page may fetch from or open sockets to;
# CSP_REPORT_ONLY=true sends the policy as Content-Security-Policy-Report-Only.
CSP_DIRECTIVES = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'", *env_list("CSP_CONNECT_SRC", [])],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
if os.environ.get("CSP_REPORT_URI"):
    CSP_DIRECTIVES["report-uri"] = [os.environ["CSP_REPORT_URI"]]
_csp = {"EXCLUDE_URL_PREFIXES": ["/admin/", "/api/docs/"], "DIRECTIVES": CSP_DIRECTIVES}
if env_bool("CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _csp
else:
    CONTENT_SECURITY_POLICY = _csp

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The pages' Content-Security-Policy (below); static files are served above it, without one.
    "dexter.csp.CachedCSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # MessageMiddleware, building its storage only for a request that uses it (dexter/messages.py).
    "dexter.messages.LazyMessageMiddleware",
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
            "CONFIG": {
                # channels_redis listens with a 5 s BZPOPMIN, and redis-py 8 gives up
                # on any reply after 5 s by default: a quiet listener timed out just
                # before Redis answered (tests/integration/test_layer_idle.py).
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 5}],
                "capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000),
            },
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
        "dexter.auth.CachedJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "dexter.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    # JSON only, with a size and a depth bound (dexter/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["dexter.parsers.JSONParser"],
    # A write that publish() refuses as too large is a 400, not a 500 (dexter/errors.py).
    "EXCEPTION_HANDLER": "dexter.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # The client address of the per-address throttles: REMOTE_ADDR unless the
    # server sits behind that many proxies (then the X-Forwarded-For entry they
    # added). Without it, any client could pick its address with a header.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        # realtime_publish: REALTIME_PUBLISH_THROTTLE, read by realtime/conf.py (default 600/min).
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
    CACHES = {
        "default": {
            "BACKEND": "dexter.cache.RedisCacheWithLocalFallback",
            "LOCATION": REDIS_URL,
            # Bounded, so an unreachable Redis costs a throttled request a second at most.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Seconds a token's user is kept per process by dexter/auth.py (0: looked up on every request).
API_AUTH_CACHE_SECONDS = env_float("API_AUTH_CACHE_SECONDS", 5)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_LIFETIME", 300)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_REFRESH_LIFETIME", 86400)),
    "UPDATE_LAST_LOGIN": False,
    # Each sign-in is a token session (its `sid` claim): blacklisting its refresh
    # token revokes the session's access tokens and closes its sockets.
    "TOKEN_OBTAIN_SERIALIZER": "realtime.tokens.SessionTokenObtainPairSerializer",
    # No rotation: a session is one refresh token, and rotating would blacklist it.
    "ROTATE_REFRESH_TOKENS": False,
    "BLACKLIST_AFTER_ROTATION": False,
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

# --- Real-time layer (docs/protocol.md section 9; README "Configuration").
# The WEBSOCKET_* and REALTIME_* settings are read by realtime/conf.py itself,
# from the environment, with their defaults and checks; set one here only to
# fix it for every deployment. This one's default depends on the layer: with
# Redis the layer is the doorbell and the poller only a safety net.
if REDIS_URL and not os.environ.get("REALTIME_POLL_INTERVAL"):
    REALTIME_POLL_INTERVAL = 2.0
ISSUES_COUNT_COALESCE_SECONDS = env_float("ISSUES_COUNT_COALESCE_SECONDS", 1.0)
ISSUES_EVENTS_BATCH_LIMIT = env_int("ISSUES_EVENTS_BATCH_LIMIT", 1000, positive=True)
# Seconds a process keeps the active alert rules it checks every ingested event against (alerts/rules.py).
ALERTS_RULES_CACHE_SECONDS = env_float("ALERTS_RULES_CACHE_SECONDS", 1.0)

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

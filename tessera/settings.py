"""Django settings for Tessera.

Embedded default (no variables set): SQLite in WAL mode, in-memory channel layer, Celery eager,
local-memory cache, media on disk, DEBUG on, served on 127.0.0.1.
Production: set DATABASE_URL (PostgreSQL), REDIS_URL, CELERY_BROKER_URL, SECRET_KEY and
ALLOWED_HOSTS; DEBUG then defaults to off and the security settings to their strict values.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

from tessera.env import BASE_DIR, env, is_set

PRODUCTION = is_set("DATABASE_URL")
DEBUG = env.bool("DEBUG", default=not PRODUCTION)

if is_set("SECRET_KEY"):
    SECRET_KEY = env.str("SECRET_KEY")
elif DEBUG:
    SECRET_KEY = "embedded-development-key-not-for-production-use-0123456789abcdef"  # noqa: S105
else:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Where mutable state lives in the embedded mode: database, media, collected static files.
VAR_DIR = Path(env.str("TESSERA_VAR_DIR", default=str(BASE_DIR / "var")))
# Real public datasets for the demo loader, tests and benchmarks (never copied into the repo).
DATA_DIR = Path(env.str("TESSERA_DATA_DIR", default=str(BASE_DIR.parent / "shared" / "data")))

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "tessera",
    "accounts",
    "consent",
    "annotate",
    "games",
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
    # Last, so that it sees the outcome of authentication (django-axes requirement).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tessera.urls"
ASGI_APPLICATION = "tessera.asgi.application"
WSGI_APPLICATION = None

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
                "accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
if PRODUCTION:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    # Served over ASGI, where each request (and each websocket move) runs in a thread of the
    # server's pool: persistent connections (CONN_MAX_AGE > 0) are opened per thread and left
    # open, never reused, until the server runs out of connections (Django's docs: disable them
    # under ASGI). Without them every request opens a connection of its own (a PostgreSQL backend
    # started and torn down per websocket move; docs/benchmarks.md, contour race). So
    # connections are reused through psycopg's pool, at most DATABASE_POOL_SIZE per process (ASGI
    # servers and Celery workers alike; Celery's Django fix-up closes the pool in forked
    # workers); DATABASE_POOL_SIZE=0 turns it off.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASE_POOL_SIZE := env.int("DATABASE_POOL_SIZE", default=10):
        if DATABASES["default"]["CONN_MAX_AGE"]:
            raise ImproperlyConfigured(
                "DATABASE_CONN_MAX_AGE and DATABASE_POOL_SIZE exclude each other: set one to 0."
            )
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DATABASE_POOL_SIZE,
            "timeout": 10,
        }
    # Prepared statements: parsing and planning were a quarter of PostgreSQL's CPU time on a
    # match-three move (docs/benchmarks.md, 2026-12-07). psycopg prepares a statement on a
    # connection once it has run DATABASE_PREPARE_THRESHOLD times there; that needs server-side
    # parameter binding. Turn them off (0) behind a pooler that cannot keep them, such as
    # PgBouncer in transaction mode before 1.21.
    if DATABASE_PREPARE_THRESHOLD := env.int("DATABASE_PREPARE_THRESHOLD", default=5):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=DATABASE_PREPARE_THRESHOLD
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "tessera.sqlite3",
            "OPTIONS": {
                # WAL lets readers and one writer work at once; IMMEDIATE avoids the classic
                # "database is locked" on read-then-write transactions.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Redis: cache and channel layer ---------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's, with one connection pool per process instead of one per request thread.
            "BACKEND": "tessera.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tessera",
        }
    }
    # channels_redis' pub/sub layer: a group message is one PUBLISH, which each server process
    # receives once and hands to its own sockets. The list layer (channels_redis.core) pushes a
    # copy per socket into one Redis list per process and pops them one receive at a time: more
    # server CPU per race move, a silent drop once `capacity` messages are unread, and a message
    # lost when the socket holding the receive lock closes (seen in the 200-player benchmark,
    # docs/benchmarks.md). Delivery is at most once either way; race sockets resync
    # from the database when they hear nothing (games.contour.consumers.RESYNC_S).
    # Redis pub/sub channels ignore the database number: the prefix carries it, so deployments
    # (or a test run and a server) on different databases of one Redis never hear each other.
    # redis-py 8 reads with a 5 s socket timeout by default; give reads headroom on a busy server.
    _REDIS_PARTS = urlsplit(REDIS_URL)
    _REDIS_DB = parse_qs(_REDIS_PARTS.query).get("db", [""])[0] or (
        _REDIS_PARTS.path.strip("/") if _REDIS_PARTS.scheme in ("redis", "rediss") else ""
    )
    _REDIS_DB = _REDIS_DB or "0"
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": f"tessera.{_REDIS_DB}.",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery -------------------------------------------------------------------------------------
_CELERY_BROKER = env.str("CELERY_BROKER_URL", default="")
# Without a broker, tasks run in-process; the in-memory transport keeps Celery from ever
# reaching for a default AMQP server on localhost.
CELERY_BROKER_URL = _CELERY_BROKER or "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = not _CELERY_BROKER
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or None)
# Nobody waits on a task's return value (ping, which reports back, says otherwise): with a Redis
# result backend every task sent would otherwise subscribe the sending web process to its result
# channel for good (celery/celery#3808), a cost on every request that queues one.
CELERY_TASK_IGNORE_RESULT = True
# One result backend object per process: Celery builds one per thread otherwise, and under ASGI
# every request is a thread of its own (a new Redis client and pool for each task sent).
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # The periodic full refit that keeps incremental consensus updates exact.
    "consensus-refit-all": {
        "task": "annotate.tasks.consensus_refit_all_task",
        "schedule": env.int("CONSENSUS_REFIT_SECONDS", default=3600),
    },
    "consents-expire": {"task": "consent.tasks.consents_expire_task", "schedule": 900},
    # Files no row names (a failed delete at withdrawal, a crashed worker) are deleted daily.
    "media-sweep": {"task": "tessera.tasks.media_sweep_task", "schedule": 24 * 3600},
    # Retrain each dataset's model when its consensus has grown (also triggered by consensus runs).
    "models-train-due": {
        "task": "annotate.tasks.model_train_due_all_task",
        "schedule": env.int("MODEL_TRAIN_CHECK_SECONDS", default=6 * 3600),
    },
    # Contour race: fire room timers nobody is connected to fire, close stale rooms, match lobby.
    "race-sweep": {"task": "games.contour.tasks.race_sweep", "schedule": 15},
}

# --- Auth ---------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Brute-force protection: lock a username+address pair after repeated failures.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("PROXY_COUNT", default=0) or None
AXES_VERBOSE = False

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a failed API call then answers 401 with a WWW-Authenticate header.
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "tessera.schema.TesseraAutoSchema",
    "EXCEPTION_HANDLER": "tessera.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {"auth": "20/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": "Consent, intake, games, consensus, review and export for crowd-labelled medical images.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Internationalisation -------------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Media are never served directly: every image goes through an access-checked view.
MEDIA_URL = "/media-not-served/"
# Threads per ASGI process for contour-race room moves (games.contour.consumers).
RACE_ROOM_THREADS = env.int("RACE_ROOM_THREADS", default=2)
# The media sweep deletes stored files that no row names once they are older than this.
MEDIA_SWEEP_GRACE_HOURS = env.int("MEDIA_SWEEP_GRACE_HOURS", default=24)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Security (strict unless DEBUG; each overridable for a proxy setup) ---------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Tessera ------------------------------------------------------------------------------------
# Keyed de-identification (UID remapping, date shifts) uses its own secret, so rotating the
# Django SECRET_KEY never changes pseudonyms.
DEID_SECRET = env.str("DEID_SECRET", default=SECRET_KEY)
DEMO_IMAGES_PER_DATASET = env.int("TESSERA_DEMO_IMAGES_PER_DATASET", default=240)
# Threads one model training or scoring may use in a worker.
TORCH_THREADS = env.int("TORCH_THREADS", default=2)
# Train models automatically when consensus grows. Off in the embedded mode, where Celery runs
# tasks inside the request (admins train from the model page there).
ACTIVE_LEARNING_AUTOTRAIN = env.bool("ACTIVE_LEARNING_AUTOTRAIN", default=bool(_CELERY_BROKER))
# Answers faster than this cannot be a human judgement: they earn nothing and count toward bot flags.
MIN_HUMAN_RESPONSE_MS = env.int("MIN_HUMAN_RESPONSE_MS", default=400)

# --- Logging: one JSON object per line in production, readable lines in development -------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "console": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
    },
    "handlers": {"default": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}

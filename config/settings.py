"""Django settings for Engram. Every environment variable the product reads is read here.

The README's configuration table documents each one. Defaults are production-safe when DEBUG is
off: a missing SECRET_KEY is an error, cookies are HTTP-only, and HTTPS hardening is switched on
with HTTPS=1 (it depends on the deployment, so it cannot default to on).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_optional_seconds, env_str
from core.channel_config import channel_layers

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the running product writes (Redis data, SQLite, logs) lives here; it is git-ignored.
STATE_DIR = Path(env_str("ENGRAM_STATE_DIR", str(BASE_DIR / ".state"))).resolve()

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string (or set DEBUG=1 for local development)."
        )
    # Local development: one random key per checkout, kept in the state folder so sessions survive restarts.
    key_file = STATE_DIR / "dev_secret_key"
    if not key_file.exists():
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Pages that may open the WebSockets besides the server's own origin (scheme, host and port, e.g.
# "https://chat.example.com"; "https://*.example.com" for subdomains), as for CSRF by default.
WEBSOCKET_ALLOWED_ORIGINS = env_list("WEBSOCKET_ALLOWED_ORIGINS", CSRF_TRUSTED_ORIGINS)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "axes",
    "core",
    "memory",
    "chat",
    "inspector",
    "ninja",  # its bundled Swagger UI for /api/v1/docs (no CDN, fits the CSP)
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A view that cannot reach Redis answers a plain 503 ("try again in a moment"), not a 500.
    "core.middleware.RedisOutageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees the login view's answer and can replace it with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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

# Django's own tables (users, sessions) only; memory lives in Redis.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("DATABASE_PATH", str(STATE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# In DEBUG, WhiteNoise serves straight from the finders; otherwise from `collectstatic` output.
STATIC_ROOT = None if DEBUG else STATE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "/accounts/login/"
# After login, the user's chats (a safe ?next= wins); after logout, the login page saying so
# (chat.views.log_out), never the admin's "Logged out" page.
LOGIN_REDIRECT_URL = "/chat/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# axes checks every login (the chat's, the inspector's and the admin's all go through
# authenticate()) before the model backend tries the password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Security -----------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# An anonymous visitor's memories hang on their session cookie: Django's two weeks would make a
# visitor who comes back a month later a stranger (and strand what Engram learned about them).
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE_SECONDS", 180 * 24 * 3600, minimum=60)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Deployment-dependent HTTPS hardening: on with HTTPS=1 (behind TLS), off for plain-HTTP local runs.
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Login throttling (django-axes): this many wrong passwords for one username from one IP address
# lock that pair out for the cool-off; others (another user, the same user elsewhere) are unaffected.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("LOGIN_COOLOFF_SECONDS", 15 * 60, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Failed attempts are kept only for the cool-off; a log of every successful login is not needed.
AXES_DISABLE_ACCESS_LOG = True
# A wrong password while locked out does not restart the cool-off: it ends when the message says.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The login form again, with the lockout in plain words (axes' default is a bare text answer).
AXES_LOCKOUT_CALLABLE = "chat.views.login_locked_out"
# The client address is REMOTE_ADDR (django-ipware is not installed): behind a reverse proxy that is
# the proxy's, so the lockout then counts per username only in effect (see README, Security).

# Content-Security-Policy (django-csp): scripts, styles and connections only from this origin, no
# inline script or style anywhere ('self' also covers the page's own ws:// and wss:// origin).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Redis --------------------------------------------------------------------------------------
# Unset REDIS_URL = the embedded server that `make run` starts (see core/embedded_redis.py).
EMBEDDED_REDIS_PORT = env_int("EMBEDDED_REDIS_PORT", 6380, minimum=1)
REDIS_EMBEDDED = not env_str("REDIS_URL")
REDIS_URL = env_str("REDIS_URL") or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
REDIS_DATA_DIR = STATE_DIR / "redis"
# REDIS_URL names one node of a Redis Cluster (README, "Redis Cluster": what works there and what not).
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
# The extraction turn stream split over this many keys (one per session's crc32 % n), so no one
# cluster node takes every turn. Raise only: entries on a shard above n would not be read.
TURN_STREAM_SHARDS = env_int("TURN_STREAM_SHARDS", 1, minimum=1)
# Every key Engram writes starts with this; tests give each run its own prefix.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "engram")


CHANNEL_LAYERS = channel_layers(REDIS_URL, f"{REDIS_KEY_PREFIX}:asgi")

# --- Models ------------------------------------------------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
CHAT_MODEL = env_str("CHAT_MODEL", "gpt-4o-mini")
EXTRACTION_MODEL = env_str("EXTRACTION_MODEL") or CHAT_MODEL
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 60.0, minimum=1.0)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2, minimum=0)
# A chat tab whose running turn sends no frame for this long re-reads the session's history: a
# second net behind the channel layer (a Redis outage mid-turn still loses frames; NOTES.md).
CHAT_STALL_RESYNC_SECONDS = env_float("CHAT_STALL_RESYNC_SECONDS", 15.0, minimum=0.5)

EMBEDDING_PROVIDER = env_str("EMBEDDING_PROVIDER", "local").lower()
if EMBEDDING_PROVIDER not in {"local", "openai"}:
    raise ImproperlyConfigured(f"EMBEDDING_PROVIDER must be 'local' or 'openai', got {EMBEDDING_PROVIDER!r}")
EMBEDDING_MODEL = env_str(
    "EMBEDDING_MODEL", "all-MiniLM-L6-v2" if EMBEDDING_PROVIDER == "local" else "text-embedding-3-small"
)
# Torch threads for the local model. One short sentence gains nothing from intra-op threads, and
# under load two threads spin against each other (15 ms vs 480 ms per query measured on 2 cores).
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", 1, minimum=1)
# Only needed for OpenAI-compatible models whose size Engram does not know (see core/embeddings.py).
EMBEDDING_DIMS = env_int("EMBEDDING_DIMS", 0, minimum=0)

# --- Memory knobs (the memory engine reads them from django.conf.settings) ----------------------
WORKING_MEMORY_TTL_SECONDS = env_optional_seconds("WORKING_MEMORY_TTL_SECONDS", 7 * 24 * 3600)
EPISODIC_TTL_SECONDS = env_optional_seconds("EPISODIC_TTL_SECONDS", 90 * 24 * 3600)
SEMANTIC_TTL_SECONDS = env_optional_seconds("SEMANTIC_TTL_SECONDS", None)
PROCEDURAL_TTL_SECONDS = env_optional_seconds("PROCEDURAL_TTL_SECONDS", None)
# Raw chat turns kept as `message` memories (retrieval falls back on what was actually said).
MESSAGE_TTL_SECONDS = env_optional_seconds("MESSAGE_TTL_SECONDS", 90 * 24 * 3600)
# Whose turns become `message` memories: "user", "assistant", both, or none (empty).
MESSAGE_MEMORY_ROLES = tuple(env_list("MESSAGE_MEMORY_ROLES", ["user"]))
if not set(MESSAGE_MEMORY_ROLES) <= {"user", "assistant"}:
    raise ImproperlyConfigured("MESSAGE_MEMORY_ROLES must list user and/or assistant (or be empty)")
SOFT_DELETE_GRACE_SECONDS = env_int("SOFT_DELETE_GRACE_SECONDS", 7 * 24 * 3600, minimum=0)
# How often a worker runs the retention sweep (memory/retention.py): the words of memories that
# expired or were purged leave history, the audit stream, traces, plans and dead letters.
RETENTION_SWEEP_SECONDS = env_int("RETENTION_SWEEP_SECONDS", 3600, minimum=1)
# Dead letters hold whole chat turns: they are dropped this long after they failed (none = keep).
DEAD_LETTER_RETENTION_SECONDS = env_optional_seconds("DEAD_LETTER_RETENTION_SECONDS", 30 * 24 * 3600)
TOOL_CACHE_TTL_SECONDS = env_int("TOOL_CACHE_TTL_SECONDS", 3600, minimum=1)
MEMORY_MAX_TEXT_CHARS = env_int("MEMORY_MAX_TEXT_CHARS", 2000, minimum=16)
MESSAGE_MAX_CHARS = env_int("MESSAGE_MAX_CHARS", 8000, minimum=16)
# At most memory.search_params.MAX_TOP_K (a search refuses more): said at start-up, not per chat turn.
RETRIEVAL_TOP_K = env_int("RETRIEVAL_TOP_K", 10, minimum=1, maximum=100)
# A memory is injected when final >= max(RETRIEVAL_THRESHOLD, RETRIEVAL_RELATIVE_THRESHOLD x best).
RETRIEVAL_THRESHOLD = env_float("RETRIEVAL_THRESHOLD", 0.05, minimum=0.0)
RETRIEVAL_RELATIVE_THRESHOLD = env_float("RETRIEVAL_RELATIVE_THRESHOLD", 0.5, minimum=0.0)
RETRIEVAL_NEAR_MISSES = env_int("RETRIEVAL_NEAR_MISSES", 3, minimum=0)
# Weights tuned on LoCoMo (bench/results/locomo.json): 0.7/0.3/0.1 gave recall@10 42.5.
HYBRID_VECTOR_WEIGHT = env_float("HYBRID_VECTOR_WEIGHT", 0.4, minimum=0.0)
HYBRID_KEYWORD_WEIGHT = env_float("HYBRID_KEYWORD_WEIGHT", 0.6, minimum=0.0)
RECENCY_WEIGHT = env_float("RECENCY_WEIGHT", 0.05, minimum=0.0)
RECENCY_HALF_LIFE_DAYS = env_float("RECENCY_HALF_LIFE_DAYS", 365.0, minimum=0.01)
# Conversation context (memory.search._conversation_context), tuned on LoCoMo: 0/0 gives
# recall@10 64.7, 1.5/0.2 about 71.
RETRIEVAL_SESSION_WEIGHT = env_float("RETRIEVAL_SESSION_WEIGHT", 1.5, minimum=0.0)
RETRIEVAL_NEIGHBOUR_WEIGHT = env_float("RETRIEVAL_NEIGHBOUR_WEIGHT", 0.2, minimum=0.0)
# A memory filed under the topic a question is about (memory/topics.py) gets this bonus; 0 = off.
RETRIEVAL_TOPIC_WEIGHT = env_float("RETRIEVAL_TOPIC_WEIGHT", 0.2, minimum=0.0)
PROMPT_TOKEN_BUDGET = env_int("PROMPT_TOKEN_BUDGET", 3000, minimum=200)
HISTORY_STREAM_MAXLEN = env_int("HISTORY_STREAM_MAXLEN", 100_000, minimum=100)
SEMANTIC_DEDUP_DISTANCE = env_float("SEMANTIC_DEDUP_DISTANCE", 0.15, minimum=0.0)
# FLAT: every search is scoped to one user, so a filtered brute force over that user's memories is
# exact and fast, and inserts cost ~15x less than HNSW (bench/results/engine.json). HNSW pays off
# only for unscoped searches over very many memories.
VECTOR_INDEX_ALGORITHM = env_str("VECTOR_INDEX_ALGORITHM", "flat").lower()
# float16 halves the vector bytes (stored in the hash AND copied by the index); LoCoMo recall@10
# moved by <= 0.3 points against float32 (BENCHMARKS.md). The dtype of a NEW index: an install
# whose index holds another keeps reading and writing that one until `manage.py memory_index
# rebuild` converts the stored vectors and builds the index anew (memory/index.py).
VECTOR_DTYPE = env_str("VECTOR_DTYPE", "float16").lower()
if VECTOR_DTYPE not in {"float32", "float16"}:
    raise ImproperlyConfigured("VECTOR_DTYPE must be 'float32' or 'float16'")
if VECTOR_INDEX_ALGORITHM not in {"flat", "hnsw"}:
    raise ImproperlyConfigured("VECTOR_INDEX_ALGORITHM must be 'flat' or 'hnsw'")

# --- `make run` ---------------------------------------------------------------------------------
HTTP_HOST = env_str("HTTP_HOST", "127.0.0.1")
HTTP_PORT = env_int("HTTP_PORT", 8000, minimum=1)
# daphne processes behind HTTP_PORT (one process runs Python on one core); 0 or unset: one per core.
SERVER_PROCESSES = env_int("SERVER_PROCESSES", 0, minimum=0) or (os.cpu_count() or 1)
# The launcher starts again a process that exits (worker, daphne, the embedded Redis), at most this
# many times a minute each; past that it stops everything with a message (0: stop at the first exit).
LAUNCHER_MAX_RESTARTS_PER_MINUTE = env_int("LAUNCHER_MAX_RESTARTS_PER_MINUTE", 5, minimum=0)
# The pids of everything the launcher runs, rewritten at each restart (for ops and the chaos bench).
LAUNCHER_PID_FILE = Path(env_str("LAUNCHER_PID_FILE", str(STATE_DIR / "launcher.json")))

# --- Background extraction -----------------------------------------------------------------------
# discrete | summary | preferences | custom (a session may choose its own)
EXTRACTION_STRATEGY = env_str("EXTRACTION_STRATEGY", "discrete").lower()
if EXTRACTION_STRATEGY not in {"discrete", "summary", "preferences", "custom"}:
    raise ImproperlyConfigured("EXTRACTION_STRATEGY must be discrete, summary, preferences or custom")
EXTRACTION_CUSTOM_PROMPT = env_str("EXTRACTION_CUSTOM_PROMPT")
EXTRACTION_DEBOUNCE_SECONDS = env_float("EXTRACTION_DEBOUNCE_SECONDS", 3.0, minimum=0.0)
EXTRACTION_MAX_DELIVERIES = env_int("EXTRACTION_MAX_DELIVERIES", 3, minimum=1)
EXTRACTION_RETRY_BACKOFF_SECONDS = env_float("EXTRACTION_RETRY_BACKOFF_SECONDS", 2.0, minimum=0.0)
EXTRACTION_RECLAIM_IDLE_SECONDS = env_float("EXTRACTION_RECLAIM_IDLE_SECONDS", 60.0, minimum=0.1)
EXTRACTION_LOCK_SECONDS = env_float("EXTRACTION_LOCK_SECONDS", 120.0, minimum=0.5)
# Existing memories closer than this (cosine distance) are shown to the decision step.
EXTRACTION_RELATED_DISTANCE = env_float("EXTRACTION_RELATED_DISTANCE", 0.55, minimum=0.0)
TURN_STREAM_MAXLEN = env_int("TURN_STREAM_MAXLEN", 100_000, minimum=100)
# Compaction: past this many tokens of messages, older ones fold into the session summary.
WORKING_MEMORY_TOKEN_LIMIT = env_int("WORKING_MEMORY_TOKEN_LIMIT", 4000, minimum=100)
WORKING_MEMORY_KEEP_MESSAGES = env_int("WORKING_MEMORY_KEEP_MESSAGES", 8, minimum=1)

# --- Chat ------------------------------------------------------------------------------------------
CHAT_RATE_LIMIT_PER_MINUTE = env_int("CHAT_RATE_LIMIT_PER_MINUTE", 20, minimum=1)
# A user (account or anonymous visitor) keeps at most this many chats; deleting one frees a place.
CHAT_MAX_SESSIONS_PER_USER = env_int("CHAT_MAX_SESSIONS_PER_USER", 200, minimum=1)
# Accounts created per client IP address per hour.
SIGNUP_RATE_LIMIT_PER_HOUR = env_int("SIGNUP_RATE_LIMIT_PER_HOUR", 5, minimum=1)
# New anonymous visitors (a first chat without an account) per client IP address per hour.
ANON_VISITORS_PER_IP_PER_HOUR = env_int("ANON_VISITORS_PER_IP_PER_HOUR", 30, minimum=1)
CHAT_MAX_TOOL_ROUNDS = env_int("CHAT_MAX_TOOL_ROUNDS", 3, minimum=0)
# WebSocket frames larger than this are refused before parsing.
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 65536, minimum=1024)
# One turn at a time per chat, across every server process: a Redis lock held for this long and
# renewed while the turn runs (a crashed process frees its chats after at most this long).
CHAT_TURN_LOCK_SECONDS = env_float("CHAT_TURN_LOCK_SECONDS", 30.0, minimum=1.0)

# --- Workers -----------------------------------------------------------------------------------
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 5, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "filters": {"quiet_outage": {"()": "core.outage.QuietOutageFilter"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # Their readers log a traceback at every retry while Redis is away: once is enough.
        "channels_redis.pubsub": {"filters": ["quiet_outage"]},
        "channels_redis.core": {"filters": ["quiet_outage"]},
        # The openai client's HTTP library logs every request at INFO.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "sentence_transformers": {"level": "WARNING"},
        # Its start banner went to stderr at every process start, manage.py commands too (the stdio
        # MCP server's one-line refusal of a bad key was two lines).
        "axes.apps": {"level": "WARNING"},
    },
}

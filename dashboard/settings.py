"""Settings for the Seam action attempts dashboard.

Every setting an operator may change is read here, once, from the environment (or a `.env`
file beside manage.py). `.env.example` documents each variable.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required unless DEBUG is on.")
    SECRET_KEY = "insecure-development-key-for-debug-only"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
# The proxies in front that append the address they saw to X-Forwarded-For: nginx alone is 1; a
# load balancer before nginx makes 2. The client's address is the entry that many from the right.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if BEHIND_PROXY else 0)
if TRUSTED_PROXY_COUNT < 0 or (TRUSTED_PROXY_COUNT and not BEHIND_PROXY):
    raise ImproperlyConfigured(
        "TRUSTED_PROXY_COUNT counts the proxies in front of the dashboard: 0 or more, and more "
        "than 0 only with BEHIND_PROXY=true."
    )
# Reached over https (the proxy terminates TLS): HSTS, secure cookies, http -> https redirects.
HTTPS_ONLY = env.bool("HTTPS_ONLY", default=BEHIND_PROXY)

SEAM_API_KEY = env.str("SEAM_API_KEY", default="")
SEAM_API_URL = env.str("SEAM_API_URL", default="https://connect.getseam.com").rstrip("/")
SEAM_WEBHOOK_SECRET = env.str("SEAM_WEBHOOK_SECRET", default="")
# Retention for `manage.py prune`, in days; empty keeps everything. Checked by the command,
# which refuses a bad value before deleting anything.
EVENT_RETENTION_DAYS = env.str("EVENT_RETENTION_DAYS", default="")
ATTEMPT_RETENTION_DAYS = env.str("ATTEMPT_RETENTION_DAYS", default="")

SEAM_POLL_SECONDS = env.int("SEAM_POLL_SECONDS", default=3)
if SEAM_POLL_SECONDS < 1:
    raise ImproperlyConfigured("SEAM_POLL_SECONDS must be at least 1.")
# An attempt that Seam's answers to this many refreshes in a row left out, over at least this
# many minutes, is marked "not found on Seam": no longer refreshed, nor counted stuck. Both
# bounds, so that neither a burst of polls nor one slow night marks an attempt Seam still has.
SEAM_NOT_FOUND_REFRESHES = env.int("SEAM_NOT_FOUND_REFRESHES", default=5)
if SEAM_NOT_FOUND_REFRESHES < 3:
    raise ImproperlyConfigured("SEAM_NOT_FOUND_REFRESHES must be at least 3.")
SEAM_NOT_FOUND_MINUTES = env.int("SEAM_NOT_FOUND_MINUTES", default=30)
if SEAM_NOT_FOUND_MINUTES < 10:
    raise ImproperlyConfigured("SEAM_NOT_FOUND_MINUTES must be at least 10.")

# Alerts: Apprise URLs that receive notices (none: alerts show in the dashboard only), the
# default error-rate rule's threshold in percent, the public base URL for links in notices.
# A malformed URL is refused by a system check (alerts.checks), never at sending time.
ALERT_URLS = env.list("ALERT_URLS", default=[])
ALERT_ERROR_RATE = env.float("ALERT_ERROR_RATE", default=25.0)
DASHBOARD_URL = env.str("DASHBOARD_URL", default="").rstrip("/")
# Bearer token for GET /metrics; unset: /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Single sign-on with the team's OpenID Connect provider (accounts/oidc.py); none without an
# issuer. Roles come from the groups claim (accounts/access.py); OIDC_VIEWER_GROUPS, when set,
# limits who may sign in at all.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_NAME = env.str("OIDC_NAME", default="single sign-on")
OIDC_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
OIDC_VIEWER_GROUPS = env.list("OIDC_VIEWER_GROUPS", default=[])
OIDC_OPERATOR_GROUPS = env.list("OIDC_OPERATOR_GROUPS", default=[])
OIDC_ADMIN_GROUPS = env.list("OIDC_ADMIN_GROUPS", default=[])
if OIDC_ISSUER and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET too.")
# Sign-in by a header that an auth proxy in front sets (accounts/trusted_header.py), honoured
# only with BEHIND_PROXY; the groups header's groups give roles as OIDC_*_GROUPS say.
REMOTE_USER_HEADER = env.str("REMOTE_USER_HEADER", default="")
REMOTE_GROUPS_HEADER = env.str("REMOTE_GROUPS_HEADER", default="")
# mozilla-django-oidc's own settings: the authorization code flow with state, nonce and PKCE,
# client_secret_basic at the token endpoint, bounded calls to the provider.
OIDC_RP_CLIENT_ID = OIDC_CLIENT_ID
OIDC_RP_CLIENT_SECRET = OIDC_CLIENT_SECRET
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = OIDC_SCOPES
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_TOKEN_USE_BASIC_AUTH = True
OIDC_TIMEOUT = 5

INSTALLED_APPS = [
    # Django's admin, for admins (accounts.access decides who is one).
    "accounts.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    # django-csp's system checks (a malformed policy is refused at start).
    "csp",
    # The roles' groups (accounts/migrations).
    "accounts.apps.AccountsConfig",
    "attempts",
    "seam",
    "pages",
    "alerts",
    "metrics",
    "insights",
]

MIDDLEWARE = [
    # Outermost, so its one line per request times and sees everything, static files included.
    "dashboard.middleware.RequestLogMiddleware",
    # Next, so its process_exception runs before the request line's: no traceback per request
    # while the database is down.
    "dashboard.middleware.DatabaseUnavailableMiddleware",
    # Pages and CSV exports compress well; Django's GZip pads its output against BREACH, and
    # masks the CSRF token per response.
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside WhiteNoise, so static files carry the policy too.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Does nothing unless REMOTE_USER_HEADER is set and BEHIND_PROXY is on.
    "accounts.trusted_header.TrustedHeaderMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

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
                "dashboard.cache.notice",
                "alerts.context.incident_banner",
                "accounts.access.rights",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Two gunicorn workers and a webhook burst share one file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front (so no deadlocked upgrade of a read lock),
    # and the busy timeout makes a writer wait its turn instead of failing "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000;"
            ),
        }
    )
    # Tests share the database between the test process, gunicorn and threads: a file, not memory.
    _name = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["TEST"] = {"NAME": str(_name.with_name(f"test-{_name.name}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable server fails a request in seconds (a 503), well within Svix's 15 s.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # So does a wait for a lock another transaction holds (a hot counter row, a long transaction):
    # a webhook answers 503 in time for Svix to retry it, not past its 15 s or gunicorn's 30 s.
    _options = DATABASES["default"]["OPTIONS"].get("options", "")
    if "lock_timeout" not in _options:
        DATABASES["default"]["OPTIONS"]["options"] = f"{_options} -c lock_timeout=5s".strip()
# Each worker keeps its connection: opening one (SQLite's pragmas included) cost more than
# a webhook's whole write.
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

# The default cache lives in the database: every worker of the machine shares it, and its
# add() is atomic, which the single-flight lock of the Seam refresh relies on. It is reached
# through dashboard.cache.FailSoftCache: pages answer from the database while it is down.
CACHES = {
    "default": {"BACKEND": "dashboard.cache.FailSoftCache", "LOCATION": "backend"},
    "backend": env.cache("CACHE_URL", default="dbcache://dashboard_cache"),
}
if CACHES["backend"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis that stops answering costs a request (and /readyz) one timeout of 2 s, not the
    # worker's; the fail-soft cache then leaves it alone for a few seconds.
    for _option in ("socket_connect_timeout", "socket_timeout"):
        CACHES["backend"].setdefault("OPTIONS", {}).setdefault(_option, 2)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# AxesStandaloneBackend refuses logins while locked out; it needs the request, so tests log in
# with Client.force_login() (Client.login() passes no request).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "accounts.oidc.ProviderBackend",
    "accounts.trusted_header.TrustedHeaderBackend",
    # Permissions only: an admin (accounts.access) holds them all.
    "accounts.access.AdminRights",
]
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "dashboard.middleware.client_ip"
AXES_VERBOSE = False  # its own log lines name the username; the request line says enough

# A shift-long session that ends with the browser. Not sliding: the live poll would write the
# session row every few seconds.
SESSION_COOKIE_AGE = env.int("SESSION_HOURS", default=12) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/attempts/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

X_FRAME_OPTIONS = "DENY"
# No inline scripts, styles or eval: an injected tag or attribute cannot run script. So htmx
# trigger filters and hx-on (eval) are not used, and base.html turns off htmx's inline indicator
# <style> (includeIndicatorStyles: false): static/js and static/css do their work.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if HTTPS_ONLY:
    SECURE_SSL_REDIRECT = True
    # Load balancers probe the workers directly, over plain http, and Prometheus scrapes each
    # instance so (deploy/prometheus/prometheus.yml).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# HSTS preload is a commitment for a whole registered domain, made by its owner, not by an app.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "keyvalue": {"format": "time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"},
    },
    "filters": {"skip_logged_exceptions": {"()": "dashboard.middleware.SkipLoggedExceptions"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "keyvalue"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # The request line (dashboard.middleware) logs every status, and a view's exception with
        # its traceback and context: django.request keeps only errors raised elsewhere.
        "django.request": {"level": "ERROR", "filters": ["skip_logged_exceptions"]},
        # Lockouts are warnings; every successful login at INFO is noise beside the request line.
        "axes": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Apprise's own lines may quote a URL, token and all: alerts logs its own, token-free.
        "apprise": {"level": "CRITICAL"},
    },
}

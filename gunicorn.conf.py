"""gunicorn's settings, read by `gunicorn dashboard.wsgi` from the working directory."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Sync workers: the views are short database reads and one bounded call to Seam.
worker_class = "sync"
timeout = 30
graceful_timeout = 20
accesslog = "-"
access_log_format = (
    'time=%(t)s remote=%(h)s method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s duration_ms=%(M)s'
)

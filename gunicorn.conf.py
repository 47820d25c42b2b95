"""gunicorn's settings, read by `gunicorn dashboard.wsgi` from the working directory.

Environment: GUNICORN_BIND (default 127.0.0.1:8000), WEB_CONCURRENCY (workers, default 2),
GUNICORN_ACCESS_LOG (off by default: the app logs one line per request, with user and timing),
PROMETHEUS_MULTIPROC_DIR (where workers keep their /metrics counts; default: a fresh temp dir).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

# /metrics sums the counters of every worker: prometheus_client's multiprocess mode, set up here,
# before the app (and prometheus_client) is imported. Counts start afresh with each instance.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir, _own_metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]), False
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for _stale in _metrics_dir.glob("*.db"):
        _stale.unlink()
else:
    _metrics_dir, _own_metrics_dir = Path(tempfile.mkdtemp(prefix="dashboard-metrics-")), True
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)

# The instance's export slots: lock files of its own (dashboard/streams.py).
_streams_dir = Path(tempfile.mkdtemp(prefix="dashboard-streams-"))

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Sync workers: the views are short database reads and one bounded call to Seam. This one also
# tells the arbiter it is alive after each chunk of a streamed response (dashboard/workers.py),
# so a CSV export of any size is never cut at `timeout`.
worker_class = "dashboard.workers.StreamingSyncWorker"
# A worker silent this long is killed: a request stuck in one place, or a stream that sent
# nothing for as long. Seam's webhooks give up after 15 s; nginx's proxy_read_timeout in
# deploy/nginx.conf (between two reads from gunicorn) is 30 s too.
timeout = 30
graceful_timeout = 20
# Recycled now and then, staggered, so no slow leak outlives a day.
max_requests = 2000
max_requests_jitter = 200
# The app is imported once, in the master: a recycled worker forks ready at once instead of
# importing Django anew (~0.4 s of CPU while the other worker takes all the traffic). So new
# code needs a restart, not a HUP.
preload_app = True
# gunicornc's socket defaults to one path per user: instances on one host would fight over it,
# and a service user's home may be read-only. Nothing here uses it.
control_socket_disable = True
errorlog = "-"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
access_log_format = (
    'time=%(t)s remote=%(h)s method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s duration_ms=%(M)s'
)


def on_starting(server) -> None:
    # A misconfiguration (a malformed ALERT_URLS entry, for one) stops the start, readably.
    import django
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    django.setup()
    try:
        call_command("check")
    except SystemCheckError as e:
        server.log.error("%s", e)
        sys.exit(1)

    # Long exports may hold all workers but one (dashboard/streams.py); set here, in the master,
    # with the instance's final number of workers, so every worker shares the slots.
    from dashboard import streams

    streams.configure(_streams_dir, server.cfg.workers - 1)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    shutil.rmtree(_streams_dir, ignore_errors=True)
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)

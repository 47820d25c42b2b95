import logging
import secrets

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dashboard.access import login_required
from dashboard.cache import bounded_wait

log = logging.getLogger(__name__)


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: answers while the process runs, touches nothing."""
    return HttpResponse("ok\n", content_type="text/plain")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    # The real cache, past the fail-soft wrapper that would hide its errors.
    backend = getattr(cache, "backend", cache)
    token = secrets.token_hex(8)
    # A cache table waits for SQLite's write lock as long as the wrapper lets it, not the
    # connection's 20 s: a probe must answer before the load balancer gives up on it.
    with bounded_wait(backend):
        backend.set("readyz", token, timeout=30)
        # Django's cache table drops a write it cannot make, silently: read it back.
        if backend.get("readyz") != token:
            raise RuntimeError("the cache did not keep a write")


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: 200 when the database and the cache answer, else 503 naming what failed.

    The page says only which part failed and the error's class; the log has the message.
    """
    lines, ready = [], True
    for name, check in (("database", _check_database), ("cache", _check_cache)):
        try:
            check()
        except Exception as exc:
            ready = False
            lines.append(f"{name} failed ({type(exc).__name__})")
            log.warning("readyz check=%s failed error=%s: %s", name, type(exc).__name__, exc)
        else:
            lines.append(f"{name} ok")
    return HttpResponse(
        "\n".join(lines) + "\n", status=200 if ready else 503, content_type="text/plain"
    )


@login_required
@require_GET
@never_cache
def cache_notice(request: HttpRequest) -> HttpResponse:
    """The notice "live refresh paused: the cache is unavailable", polled by itself while it is
    shown, so that it leaves every page (even one without a live poll) when the cache is back."""
    return render(request, "_cache_notice.html")

import logging
import secrets

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

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
    token = secrets.token_hex(8)
    cache.set("readyz", token, timeout=30)
    if cache.get("readyz") is None:
        raise RuntimeError("the cache kept nothing")


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

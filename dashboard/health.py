import logging
import secrets

from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

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


def pending_migrations() -> list[str]:
    """The migrations this code has that the database has not applied, as `app.name`."""
    executor = MigrationExecutor(connection)
    targets = executor.loader.graph.leaf_nodes()
    return [f"{m.app_label}.{m.name}" for m, _ in executor.migration_plan(targets)]


def _check_cache() -> None:
    # The real cache, past the fail-soft wrapper that would hide its errors.
    backend = getattr(cache, "backend", cache)
    # A key of this probe's own: probes at once never read each other's writes.
    key, token = f"readyz:{secrets.token_hex(8)}", secrets.token_hex(8)
    # A cache table waits for SQLite's write lock as long as the wrapper lets it, not the
    # connection's 20 s: a probe must answer before the load balancer gives up on it.
    with bounded_wait(backend):
        backend.set(key, token, timeout=30)
        try:
            # Django's cache table drops a write it cannot make, silently: read it back.
            if backend.get(key) != token:
                raise RuntimeError("the cache did not keep a write")
        finally:
            backend.delete(key)


def _failed(name: str, exc: Exception) -> str:
    log.warning("readyz check=%s failed error=%s: %s", name, type(exc).__name__, exc)
    return f"{name} failed ({type(exc).__name__})"


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: 200 while the database answers and every migration is applied, else 503 naming
    what is wrong. The cache only speeds things up (dashboard/cache.py): while it is unavailable
    the body says so, and the instance still serves, so it stays ready.

    The page says only which part failed and the error's class; the log has the message.
    """
    try:
        _check_database()
        pending = pending_migrations()
    except Exception as exc:
        return _answer([_failed("database", exc)], ready=False)
    lines = ["database ok"]
    if pending:
        lines.append(f"migrations pending ({len(pending)}): {', '.join(pending)}")
    else:
        lines.append("migrations ok")
    try:
        _check_cache()
    except Exception as exc:
        _failed("cache", exc)
        lines.append(f"cache unavailable ({type(exc).__name__}): serving without it")
    else:
        lines.append("cache ok")
    return _answer(lines, ready=not pending)


def _answer(lines: list[str], ready: bool) -> HttpResponse:
    return HttpResponse(
        "\n".join(lines) + "\n", status=200 if ready else 503, content_type="text/plain"
    )

"""One log line per request with its request id, the client's address, and a readable 503 while
the database is unavailable (dashboard/database.py says when)."""

import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from dashboard.database import unavailable

log = logging.getLogger("dashboard.request")


def client_ip(request: HttpRequest) -> str:
    """The client's address (django-axes locks a username at it, the request line logs it).

    Behind TRUSTED_PROXY_COUNT proxies, each appending the address it saw to X-Forwarded-For, the
    client's is that many entries from the right: entries further left come from the client and
    can be forged. Fewer entries than proxies: the left-most, which the outermost proxy passed
    appended. Anything that is not an address (a proxy misconfigured) counts as no header.
    """
    count = settings.TRUSTED_PROXY_COUNT if settings.BEHIND_PROXY else 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "") if count else ""
    entries = [entry.strip() for entry in forwarded.split(",") if entry.strip()]
    if entries:
        candidate = entries[-min(count, len(entries))]
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            pass
    return request.META.get("REMOTE_ADDR", "")


def kv(**fields: object) -> str:
    """key=value pairs; a value with spaces, quotes or control characters is JSON-quoted."""
    parts = []
    for key, value in fields.items():
        text = "" if value is None else str(value)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


# A request id the proxy set (nginx's $request_id): kept when it looks like one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id(request: HttpRequest) -> str:
    """The request's id, in its log lines and its X-Request-ID header: the proxy's, else our own."""
    rid = getattr(request, "request_id", None)
    if rid is None:
        given = request.headers.get("X-Request-ID", "") if settings.BEHIND_PROXY else ""
        rid = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = rid  # type: ignore[attr-defined]
    return rid


def _user_id(request: HttpRequest, load: bool = False) -> object:
    # Per request, only a user the view already loaded: the line must not cost a session query.
    try:
        user = getattr(request, "user" if load else "_cached_user", None)
        return user.pk if user is not None and user.is_authenticated else "-"
    except Exception:  # the error being logged may be the database's
        return "?"


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        rid = request_id(request)
        response = self.get_response(request)
        duration_ms = (time.perf_counter() - start) * 1000
        line = kv(
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=f"{duration_ms:.1f}",
            user=_user_id(request),
            ip=client_ip(request),
        )
        if request.headers.get("HX-Request"):
            line += " htmx=1"
        line += f" request_id={rid}"
        log.log(logging.WARNING if response.status_code >= 500 else logging.INFO, line)
        response["X-Request-ID"] = rid
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # The whole message, once: "no such column", a syntax error, say what is wrong.
        log.exception(
            kv(
                event="unhandled_exception",
                method=request.method,
                path=request.path,
                user=_user_id(request, load=True),
                ip=client_ip(request),
                request_id=request_id(request),
                error=type(exception).__name__,
                message=str(exception)[:2000],
            )
        )
        request._exception_logged = True  # type: ignore[attr-defined]


class DatabaseUnavailableMiddleware:
    """A page whose database is unavailable (a lost or refused connection, a lock wait past its
    bound) answers 503 with a page saying so. Any other database error is left to be a 500.

    The page is rendered without the request: its context would ask the database again (the
    session, the user).
    """

    RETRY_AFTER_SECONDS = 10

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        reason = unavailable(exception)
        if reason is None:
            return None
        log.warning(
            kv(
                event="database_unavailable",
                method=request.method,
                path=request.path,
                ip=client_ip(request),
                request_id=request_id(request),
                error=type(exception).__name__,
                reason=reason,
            )
        )
        response = HttpResponse(render_to_string("database_unavailable.html"), status=503)
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response


class SkipLoggedExceptions(logging.Filter):
    """Drops django.request's copy of an exception the request line's middleware logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(getattr(record, "request", None), "_exception_logged", False)

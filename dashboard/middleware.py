"""One log line per request, the client's address, and a readable 503 while the database is
unreachable."""

import ipaddress
import json
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

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
        log.log(logging.WARNING if response.status_code >= 500 else logging.INFO, line)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        log.exception(
            kv(
                event="unhandled_exception",
                method=request.method,
                path=request.path,
                user=_user_id(request, load=True),
                ip=client_ip(request),
                error=type(exception).__name__,
            )
        )
        request._exception_logged = True  # type: ignore[attr-defined]


class DatabaseUnavailableMiddleware:
    """A page whose database is unreachable answers 503 with a page saying so, not a 500.

    The page is rendered without the request: its context would ask the database again (the
    session, the user).
    """

    RETRY_AFTER_SECONDS = 10

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning(
            kv(
                event="database_unavailable",
                method=request.method,
                path=request.path,
                ip=client_ip(request),
                error=type(exception).__name__,
            )
        )
        response = HttpResponse(render_to_string("database_unavailable.html"), status=503)
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response


class SkipLoggedExceptions(logging.Filter):
    """Drops django.request's copy of an exception the request line's middleware logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(getattr(record, "request", None), "_exception_logged", False)

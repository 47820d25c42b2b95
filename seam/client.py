"""The Seam API client: HTTP only, one pooled httpx client per process, typed errors.

Every call is a read (POST with a JSON body, as Seam documents), so every call may be retried:
on connection errors, timeouts, 429 and 5xx, with exponential backoff and jitter, honouring
Retry-After, bounded in attempts and in total time. A call may tighten both bounds for itself
(`max_attempts`, `max_total`): a refresh made inside a page's request waits far less than a
background sync. The API key is sent in a header and never
put into a message, a log line or an exception.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings

from seam import signals

log = logging.getLogger(__name__)

PAGE_LIMIT = 500  # Seam's default and largest page of /action_attempts/list
MAX_PAGES = 1000  # a guard against a server that keeps answering a next page


class SeamError(Exception):
    """A readable reason why Seam could not answer; never contains the API key."""

    def __init__(self, message: str, *, status_code: int | None = None, error_type: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type


class SeamNotConfigured(SeamError):
    pass


class SeamNotFound(SeamError):
    pass


class SeamUnauthorized(SeamError):
    pass


class SeamUnavailable(SeamError):
    pass


class SeamBadResponse(SeamError):
    pass


class SeamRejected(SeamError):
    """Seam refused the request itself (a 4xx other than 401/404), e.g. `invalid_input`."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_page_cursor: str | None


class SeamClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        max_total: float = 10.0,
    ) -> None:
        if not api_key:
            raise SeamNotConfigured("SEAM_API_KEY is not set: the dashboard cannot ask Seam.")
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_total = max_total
        self._key = api_key
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"seam-attempts-dashboard/{settings.VERSION}",
            },
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=5),
        )

    def __repr__(self) -> str:
        return f"<SeamClient {self.base_url}>"

    def close(self) -> None:
        self.http.close()

    def get(self, action_attempt_id: str, **bounds: Any) -> dict[str, Any]:
        body = {"action_attempt_id": action_attempt_id}
        data = self._post("/action_attempts/get", body, **bounds)
        return self._field(data, "action_attempt", dict)

    def list(self, action_attempt_ids: Iterable[str], **bounds: Any) -> list[dict[str, Any]]:
        """The attempts Seam has among these ids, in batches of PAGE_LIMIT; others are absent.
        `bounds` (max_attempts, max_total) hold for the whole call, every batch included."""
        ids = list(dict.fromkeys(action_attempt_ids))
        found: list[dict[str, Any]] = []
        deadline = self._deadline(bounds.pop("max_total", None))
        for start in range(0, len(ids), PAGE_LIMIT):
            body = {"action_attempt_ids": ids[start : start + PAGE_LIMIT], "limit": PAGE_LIMIT}
            try:
                found += self._pages(
                    "/action_attempts/list", body, "action_attempts", deadline=deadline, **bounds
                )
            except SeamNotFound as exc:
                # Older servers (Seam's fake among them) answer 404 when none of the ids exist.
                if exc.error_type != "action_attempts_not_found":
                    raise
        return found

    def list_page(self, *, limit: int = PAGE_LIMIT, page_cursor: str | None = None) -> Page | None:
        """One page of the workspace's attempts, for discovery; None where the server cannot
        list without ids (an older server, Seam's fake among them, answers `invalid_input`)."""
        body: dict[str, Any] = {"limit": limit}
        if page_cursor:
            body["page_cursor"] = page_cursor
        try:
            data = self._post("/action_attempts/list", body)
        except SeamNotFound as exc:
            if exc.error_type == "action_attempts_not_found":
                return Page([], None)
            return None
        except SeamRejected as exc:
            if exc.status_code == 400:
                return None
            raise
        pagination = data.get("pagination") or {}
        cursor = pagination.get("next_page_cursor") if pagination.get("has_next_page") else None
        return Page(self._field(data, "action_attempts", list), cursor or None)

    def list_events(
        self, since: datetime, event_types: Iterable[str] = (), limit: int = PAGE_LIMIT
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"since": since.astimezone(UTC).isoformat(), "limit": limit}
        if event_types:
            body["event_types"] = list(event_types)
        return self._pages("/events/list", body, "events")

    def _pages(
        self, path: str, body: dict[str, Any], field: str, **bounds: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            data = self._post(path, body, **bounds)
            items += self._field(data, field, list)
            pagination = data.get("pagination") or {}
            cursor = pagination.get("next_page_cursor")
            if not pagination.get("has_next_page") or not cursor or cursor in seen:
                break
            seen.add(cursor)
            body = {**body, "page_cursor": cursor}
        return items

    @staticmethod
    def _field(data: dict[str, Any], name: str, kind: type) -> Any:
        value = data.get(name)
        if not isinstance(value, kind):
            raise SeamBadResponse(f"Seam's answer has no {name!r}.")
        return value

    def _deadline(self, max_total: float | None) -> float:
        return time.monotonic() + min(self.max_total, max_total or self.max_total)

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        max_attempts: int | None = None,
        max_total: float | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        deadline = deadline or self._deadline(max_total)
        tries = max(1, min(self.max_attempts, max_attempts or self.max_attempts))
        for attempt in range(1, tries + 1):
            delay: float | None = None
            # No single try may outlast the total bound either.
            left = max(0.1, deadline - time.monotonic())
            timeout = httpx.Timeout(
                min(self.timeout.read, left), connect=min(self.timeout.connect, left)
            )
            started = time.perf_counter()
            try:
                response = self.http.post(path, json=body, timeout=timeout)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}"
                _answered(path, None, started)
            else:
                _answered(path, response.status_code, started)
                if response.status_code != 429 and response.status_code < 500:
                    return self._parse(path, response)
                reason = f"HTTP {response.status_code}"
                delay = retry_after(response.headers.get("Retry-After"))
            if delay is None:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter: workers that failed together part
            if attempt == tries or delay > deadline - time.monotonic():
                break
            log.warning(
                "seam call=%s attempt=%d outcome=retry reason=%r wait=%.2fs",
                path,
                attempt,
                reason,
                delay,
            )
            time.sleep(delay)
        raise SeamUnavailable(
            self._clean(f"Seam is unavailable: {path} failed {attempt} times ({reason}).")
        )

    def _parse(self, path: str, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SeamBadResponse(
                f"Seam answered {path} with HTTP {response.status_code} and no JSON object.",
                status_code=response.status_code,
            )
        if response.is_success:
            return data
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        error_type = str(error.get("type") or "")
        message = self._clean(
            f"Seam answered {path} with HTTP {response.status_code}"
            f" {error_type or 'error'}: {str(error.get('message') or '')[:200]}"
        )
        kind = {401: SeamUnauthorized, 403: SeamUnauthorized, 404: SeamNotFound}.get(
            response.status_code, SeamRejected
        )
        raise kind(message, status_code=response.status_code, error_type=error_type)

    def _clean(self, message: str) -> str:
        return message.replace(self._key, "[key]")


def _answered(path: str, status_code: int | None, started: float) -> None:
    if status_code is not None and status_code < 400:
        outcome = "ok"
    elif status_code is not None and status_code < 500 and status_code != 429:
        outcome = "rejected"
    else:
        outcome = "failed"
    signals.seam_request.send_robust(
        sender=None, endpoint=path, outcome=outcome, duration=time.perf_counter() - started
    )


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


_lock = threading.Lock()
_client: SeamClient | None = None
_client_key: tuple | None = None


def get_client() -> SeamClient:
    """This process's client, rebuilt when the Seam settings change (and after a fork)."""
    global _client, _client_key
    options = getattr(settings, "SEAM_CLIENT_OPTIONS", {})
    key = (settings.SEAM_API_URL, settings.SEAM_API_KEY, repr(options), os.getpid())
    with _lock:
        if _client is None or _client_key != key:
            if _client is not None and _client_key[3] == os.getpid():
                _client.close()
            _client = SeamClient(settings.SEAM_API_URL, settings.SEAM_API_KEY, **options)
            _client_key = key
        return _client

"""The cache as an accelerator, never a dependency: a backend wrapping the configured one (Redis,
or the database's cache table) so that no cache call fails a request.

While the cache is unreachable, reads miss (`get` gives the default, `get_many` {}), `add` is
False (nobody takes a lock, so the single-flight refresh from Seam pauses instead of storming),
`incr` raises ValueError as for a missing key, and writes are dropped. After a failure the process
leaves the cache alone for RETRY_SECONDS, so a hung cache costs a request at most one socket
timeout, then one request probes it again. One log line per process when it goes away, one when
it is back.
"""

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.db import DatabaseCache
from django.db import DatabaseError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest
from redis.exceptions import RedisError

from dashboard.sqlite import busy_timeout

log = logging.getLogger(__name__)

# What an unreachable or failing cache raises: sockets, Redis, the database cache table.
UNAVAILABLE = (OSError, RedisError, DatabaseError)
RETRY_SECONDS = 5
TABLE_WAIT_SECONDS = 1
PROBE_KEY = "cache:probe"


class Health:
    """Whether this process's last call to one cache failed, and when it may try again."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.lock = threading.Lock()
        self.down_since: float | None = None
        self.retry_at = 0.0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def may_call(self) -> bool:
        """Up, or down and due for a probe: then this caller probes and the others wait."""
        if self.down_since is None:
            return True
        with self.lock:
            now = time.monotonic()
            if now < self.retry_at:
                return False
            self.retry_at = now + RETRY_SECONDS
            return True

    def failed(self, error: Exception) -> None:
        with self.lock:
            now = time.monotonic()
            self.retry_at = now + RETRY_SECONDS
            if self.down_since is not None:
                return
            self.down_since = now
        log.warning(
            "cache outcome=unavailable cache=%s error=%s retry_seconds=%d reason=%r",
            self.alias,
            type(error).__name__,
            RETRY_SECONDS,
            str(error)[:200],
        )

    def answered(self) -> None:
        if self.down_since is None:
            return
        with self.lock:
            if self.down_since is None:
                return
            down_seconds = time.monotonic() - self.down_since
            self.down_since = None
        log.info("cache outcome=recovered cache=%s down_seconds=%.1f", self.alias, down_seconds)


_health: dict[str, Health] = {}
_health_lock = threading.Lock()


def health(alias: str) -> Health:
    with _health_lock:
        return _health.setdefault(alias, Health(alias))


class FailSoftCache(BaseCache):
    """`{"BACKEND": "dashboard.cache.FailSoftCache", "LOCATION": "<alias of the real cache>"}`."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.alias = location
        self.health = health(location)

    @property
    def backend(self) -> BaseCache:
        """The real cache, for callers that want its errors (the readiness check)."""
        return caches[self.alias]

    def _call(self, missing: Callable[[], Any], name: str, *args: Any, **kwargs: Any) -> Any:
        """The real cache's answer, or `missing()` while the cache is down."""
        if not self.health.may_call():
            return missing()
        backend = self.backend
        sqlite = sqlite_table(backend)
        started = time.monotonic()
        try:
            with bounded_wait(backend):
                answer = getattr(backend, name)(*args, **kwargs)
        except UNAVAILABLE as e:
            self.health.failed(e)
            return missing()
        if sqlite and time.monotonic() - started >= TABLE_WAIT_SECONDS:
            # Django's cache table drops a write it could not make, silently: the wait tells.
            self.health.failed(
                TimeoutError(f"the cache table stayed locked {TABLE_WAIT_SECONDS} s")
            )
            return answer
        self.health.answered()
        return answer

    def available(self) -> bool:
        """Whether the cache answers; while it is down, probes it once per RETRY_SECONDS."""
        if not self.health.up:
            self._call(_none, "get", PROBE_KEY)
        return self.health.up

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self._call(lambda: default, "get", key, default, version=version)

    def get_many(self, keys: Any, version: int | None = None) -> dict[str, Any]:
        return self._call(dict, "get_many", keys, version=version)

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self._call(_false, "has_key", key, version=version)

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self._call(_false, "add", key, value, timeout, version=version)

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self._call(_none, "set", key, value, timeout, version=version)

    def set_many(
        self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        return self._call(lambda: list(data), "set_many", data, timeout, version=version)

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._call(_false, "touch", key, timeout, version=version)

    def delete(self, key: str, version: int | None = None) -> bool:
        return self._call(_false, "delete", key, version=version)

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._call(_none, "delete_many", keys, version=version)

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        return self._call(_missing_number(key), "incr", key, delta, version=version)

    def decr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        return self._call(_missing_number(key), "decr", key, delta, version=version)

    def clear(self) -> None:
        self._call(_none, "clear")

    def close(self, **kwargs: Any) -> None:
        # Django closes every cache it opened at the end of a request, the real one included.
        pass


def sqlite_table(backend: BaseCache) -> BaseDatabaseWrapper | None:
    """The SQLite connection of a cache table: it waits for the write lock (held by a backup, a
    long bulk write) at most TABLE_WAIT_SECONDS, as a Redis call waits at most its timeout."""
    if isinstance(backend, DatabaseCache):
        connection = connections[router.db_for_write(backend.cache_model_class)]
        if connection.vendor == "sqlite":
            return connection
    return None


def bounded_wait(backend: BaseCache) -> AbstractContextManager[None]:
    """A block in which a cache table waits at most TABLE_WAIT_SECONDS for SQLite's write lock
    (other caches: their own timeouts)."""
    sqlite = sqlite_table(backend)
    return busy_timeout(sqlite, TABLE_WAIT_SECONDS) if sqlite else nullcontext()


def _none() -> None:
    return None


def _false() -> bool:
    return False


def _missing_number(key: str) -> Callable[[], int]:
    def missing() -> int:
        raise ValueError(f"Key '{key}' not found: the cache is unavailable")

    return missing


def cache_available() -> bool:
    from django.core.cache import cache

    available = getattr(cache, "available", None)
    return available() if available else True


def notice(request: HttpRequest) -> dict[str, Any]:
    """Context processor: templates ask `cache_available` only when they show the notice."""
    return {"cache_available": cache_available, "cache_notice_seconds": RETRY_SECONDS}

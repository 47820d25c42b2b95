"""SQLite's busy timeout, shortened for a block where a long wait for the write lock is worse than
a failure (a webhook that Svix will retry, a cache write that can be dropped); and the write turn,
a file lock that writers queue on instead of SQLite's busy handler."""

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from filelock import FileLock, Timeout

from dashboard.database import LockWaitTimeout

# The connection's own busy timeout in ms, read once per connection: reading it on every
# webhook was one statement more inside the write lock.
USUAL = "usual_busy_timeout_ms"


@receiver(connection_created)
def _forget_usual(sender, connection: BaseDatabaseWrapper, **kwargs) -> None:
    connection.__dict__.pop(USUAL, None)


@contextmanager
def busy_timeout(connection: BaseDatabaseWrapper, seconds: float) -> Iterator[None]:
    """Waits at most `seconds` for SQLite's write lock within the block (then "database is
    locked"), and restores the connection's usual timeout afterwards."""
    with connection.cursor() as cursor:
        usual = connection.__dict__.get(USUAL)
        if usual is None:
            cursor.execute("PRAGMA busy_timeout")
            (usual,) = cursor.fetchone()
            connection.__dict__[USUAL] = usual
        cursor.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(usual)}")


# A writer holds the turn for under a millisecond: polled every millisecond, the turn sat idle
# after most releases and the workers took a fifth fewer webhooks than a blocking flock() let them.
TURN_POLL_SECONDS = 0.0001


@cache
def _turn(path: str) -> FileLock:
    # One object per file for the whole process, as filelock intends: thread_local gives each
    # thread its own hold, so threads take turns as processes do.
    return FileLock(path, mode=0o600, thread_local=True)


@contextmanager
def write_turn(wait_seconds: float | None = None) -> Iterator[None]:
    """On SQLite, wait for the write lock on an OS file lock rather than SQLite's busy handler.

    SQLite's handler polls with sleeps of up to 100 ms, so under a burst the workers' writes go
    idle and starve one another; the file lock is retried every TURN_POLL_SECONDS. With
    `wait_seconds`, the file lock and then SQLite's lock are waited for that long in all, else
    OperationalError. Elsewhere (PostgreSQL) it does nothing.
    """
    if connection.vendor != "sqlite":
        yield
        return
    lock = _turn(f"{connection.settings_dict['NAME']}-webhook-lock")
    bounded: AbstractContextManager[None] = nullcontext()
    if wait_seconds is None:
        held = lock.acquire(poll_interval=TURN_POLL_SECONDS)
    else:
        deadline = time.monotonic() + wait_seconds
        try:
            # A negative timeout would wait for ever: a deadline already past gets one try.
            held = lock.acquire(timeout=max(0.0, wait_seconds), poll_interval=TURN_POLL_SECONDS)
        except Timeout:
            raise LockWaitTimeout("database is locked (waited for the write turn)") from None
        bounded = busy_timeout(connection, deadline - time.monotonic())
    with held, bounded:
        yield

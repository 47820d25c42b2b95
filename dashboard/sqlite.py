"""SQLite's busy timeout, shortened for a block where a long wait for the write lock is worse than
a failure (a webhook that Svix will retry, a cache write that can be dropped)."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.dispatch import receiver

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

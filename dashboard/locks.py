"""One run at a time of a job (an alert evaluation, a rollups rebuild), across processes and
instances."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from django.db import connection
from filelock import FileLock, Timeout


@cache
def _file_lock(path: str) -> FileLock:
    # One object per file for the whole process, as filelock intends: thread_local gives each
    # thread its own hold, so threads exclude one another as processes do.
    return FileLock(path, mode=0o600, thread_local=True)


@contextmanager
def exclusive(name: str, key: int) -> Iterator[bool]:
    """Yields True to the one run of job `name` that may go now, False to any other meanwhile.

    PostgreSQL: a session advisory lock on `key`, held across instances and released if the
    process dies. SQLite (one host by nature): a file lock beside the database, held across
    processes and threads, likewise released.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            got = cursor.fetchone()[0]
        try:
            yield got
        finally:
            if got:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    lock = _file_lock(f"{connection.settings_dict['NAME']}-{name}-lock")
    try:
        held = lock.acquire(blocking=False)
    except Timeout:
        yield False
        return
    with held:
        yield True

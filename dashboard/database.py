"""Which database errors mean "unavailable for now" (the readable 503 with Retry-After) and which
are faults (a 500, logged with its message).

Only a lost or refused connection, or a wait for a lock past its bound, says that trying again
later will work. Anything else (a missing table or column, a syntax error) gives the same answer
every time: a migration not applied or a bug, which a 503 would disguise as an outage.
"""

from django.db import InterfaceError, OperationalError

# PostgreSQL's SQLSTATEs that mean the connection went or was refused: class 08 (connection
# exception), the server shutting down or starting (pg_terminate_backend included), too many
# connections. And lock_timeout's.
CONNECTION_GONE = {"57P01": "server shut down", "57P02": "server crashed"}
CONNECTION_GONE |= {"57P03": "server starting", "53300": "too many connections"}
LOCK_NOT_AVAILABLE = "55P03"
LOCK_WAIT = "lock wait past its bound"


class LockWaitTimeout(OperationalError):
    """A wait for a lock (SQLite's write turn) that ran out of time."""


def unavailable(error: BaseException) -> str | None:
    """Why `error` means the database is unavailable for now ("connection lost or refused",
    "lock wait past its bound"), or None for any other error."""
    if isinstance(error, LockWaitTimeout):
        return LOCK_WAIT
    if isinstance(error, InterfaceError):
        # psycopg's "the connection is closed/lost".
        return "connection lost"
    if not isinstance(error, OperationalError):
        return None
    cause = error.__cause__
    if type(cause).__module__.startswith("psycopg"):
        state = getattr(cause, "sqlstate", None)
        if state is None:
            # Connection failures carry no SQLSTATE: refused, reset, timed out, closed.
            return "connection lost or refused"
        if state.startswith("08"):
            return "connection lost or refused"
        if state == LOCK_NOT_AVAILABLE:
            return LOCK_WAIT
        return CONNECTION_GONE.get(state)
    name = getattr(cause, "sqlite_errorname", "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LOCK_WAIT
    if name.startswith("SQLITE_CANTOPEN"):
        return "cannot open the database file"
    return None

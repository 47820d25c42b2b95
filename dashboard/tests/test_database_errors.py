"""Issue 20: errors say what they are. Only a lost or refused connection, or a lock wait past its
bound, is the readable 503 with Retry-After; any other database error (a migration not applied,
a bug) is a 500 whose whole message is logged once with the request id, and /readyz names the
migrations pending.

Against real parts: the drivers' own errors, raised by real servers and files; gunicorn on a
database of the test's own, one migration set rolled back; on PostgreSQL, a row lock held by a
psycopg connection of the test's own past the webhook's lock_timeout.
"""

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db.utils import DatabaseErrorWrapper

from dashboard.database import LOCK_WAIT, LockWaitTimeout, unavailable
from dashboard.tests.test_database_down import (
    LOGIN,
    postgres,  # noqa: F401 - a fixture
)
from fakeseam import free_port
from testing.servers import BASE_DIR, POSTGRES_SERVER, Gunicorn, manage, throwaway_database
from testing.webhooks import SECRET, deliver, seam_event


def as_django(driver, error: Exception) -> Exception:
    """The driver's error as Django raises it (its own class, the driver's as the cause)."""
    try:
        with DatabaseErrorWrapper(SimpleNamespace(Database=driver, errors_occurred=False)):
            raise error
    except Exception as wrapped:
        return wrapped
    raise AssertionError("not raised")


def caught(action: Callable[[], object]) -> Exception:
    try:
        action()
    except Exception as e:
        return e
    raise AssertionError("no error")


def postgres_error(*statements: str, other: str = "") -> Exception:
    """What PostgreSQL raises for the last statement (`other` run first on a second connection,
    which keeps what it takes until the end)."""
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as holder:
        if other:
            holder.execute(other)
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as conn:
            for statement in statements[:-1]:
                conn.execute(statement)
            return caught(lambda: conn.execute(statements[-1]))


def terminated() -> Exception:
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as conn:
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        return caught(lambda: conn.execute("SELECT 1"))


def sqlite_error(tmp_path: Path, statement: str) -> Exception:
    path = tmp_path / "db.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (a)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        return caught(lambda: conn.execute(statement))
    finally:
        holder.execute("ROLLBACK")


def refused() -> Exception:
    return caught(lambda: psycopg.connect(f"postgres://x@127.0.0.1:{free_port()}/x"))


def lock_wait() -> Exception:
    take = "SELECT pg_advisory_lock(20)"
    return postgres_error("SET lock_timeout = '50ms'", take, other=take)


class TestWhatAnErrorMeans:
    @pytest.mark.parametrize("make", [refused, terminated, lock_wait])
    def test_postgresql_unavailable(self, make):
        assert unavailable(as_django(psycopg, make()))

    def test_postgresql_lock_wait(self):
        assert unavailable(as_django(psycopg, lock_wait())) == LOCK_WAIT

    @pytest.mark.parametrize("statement", ["SELEC 1", "SELECT nope FROM pg_class", "SELECT 1/0"])
    def test_postgresql_faults(self, statement):
        error = as_django(psycopg, postgres_error(statement))
        assert unavailable(error) is None, error

    @pytest.mark.parametrize(
        ("statement", "meaning"),
        [
            ("INSERT INTO t VALUES (1)", LOCK_WAIT),
            ("SELECT nope FROM t", None),
            ("SELEC 1", None),
        ],
    )
    def test_sqlite(self, tmp_path, statement, meaning):
        error = as_django(sqlite3, sqlite_error(tmp_path, statement))
        assert unavailable(error) == meaning, error

    def test_sqlite_without_its_file(self, tmp_path):
        error = caught(lambda: sqlite3.connect(tmp_path / "no such folder" / "db.sqlite3"))
        assert unavailable(as_django(sqlite3, error)) == "cannot open the database file"

    def test_the_write_turn_running_out(self):
        assert unavailable(LockWaitTimeout("database is locked")) == LOCK_WAIT


def lines(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


@pytest.mark.gunicorn
@pytest.mark.django_db(transaction=True)
def test_a_migration_not_applied_is_a_500_and_readyz_names_it():
    failed = json.dumps(seam_event("evt_x", "action_attempt.lock_door.failed", "aa_x")).encode()
    with throwaway_database() as url:
        env = {"DATABASE_URL": url, "SEAM_WEBHOOK_SECRET": SECRET}
        cookie = manage("shell", "-v0", "-c", LOGIN, env=env).strip()
        # The resolution rollups without their error type: what 0007 adds.
        manage("migrate", "attempts", "0006", env=env)
        with Gunicorn(env=env, workers=1) as server:
            http = httpx.Client(
                base_url=server.url, cookies={settings.SESSION_COOKIE_NAME: cookie}, timeout=30
            )
            page = http.get("/insights/?error_type=device_offline")
            webhook = deliver(server, failed)
            not_ready = http.get("/readyz")
            manage("migrate", env=env)
            ready = http.get("/readyz")
            output = server.output()

    assert page.status_code == 500 and webhook.status_code == 500
    for response in (page, webhook):
        rid = response.headers["X-Request-ID"]
        # Once, whole: the column it did not find.
        method = "GET" if response is page else "POST"
        [logged] = lines(output, f"event=unhandled_exception method={method}")
        assert f"request_id={rid}" in logged and "column" in logged, logged
        assert re.search(f"status=500 .*request_id={rid}", output)
    assert "event=database_unavailable" not in output
    [delivery] = lines(output, "webhook svix_id=")
    assert "outcome=rejected status=500" in delivery
    assert not_ready.status_code == 503
    # 0007 and every later one.
    later = len(list((BASE_DIR / "attempts" / "migrations").glob("00[0-9][0-9]_*.py"))) - 6
    assert f"migrations pending ({later}): attempts.0007_resolution_error_type, " in not_ready.text
    assert ready.status_code == 200 and "migrations ok" in ready.text


@pytest.mark.gunicorn
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lock_wait_past_its_bound_is_a_readable_503(postgres):  # noqa: F811
    url, _ = postgres
    with Gunicorn(env={"DATABASE_URL": url, "SEAM_WEBHOOK_SECRET": SECRET}, workers=1) as server:
        first = seam_event("evt_lock_1", "action_attempt.lock_door.succeeded", "aa_locked")
        assert deliver(server, first).status_code == 200
        with psycopg.connect(url) as holder:
            holder.execute(
                "SELECT 1 FROM attempts_attempt WHERE action_attempt_id = 'aa_locked' FOR UPDATE"
            )
            started = time.monotonic()
            again = deliver(server, {**first, "event_id": "evt_lock_2"})
            waited = time.monotonic() - started
        retried = deliver(server, {**first, "event_id": "evt_lock_2"})
        output = server.output()

    assert again.status_code == 503 and int(again.headers["Retry-After"]) > 0
    assert again.json()["error"] == f"database unavailable ({LOCK_WAIT})"
    # lock_timeout: well before Svix gives up (15 s).
    assert 4 < waited < 10, waited
    assert retried.status_code == 200 and retried.json()["recorded"] is True
    assert "Traceback" not in output, output[-3000:]

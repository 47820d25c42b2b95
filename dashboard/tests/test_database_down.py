"""Issue 11: the database. Connections dropped under the app are replaced at the next request;
while the database cannot record a webhook, the webhook answers 503 with Retry-After (Svix
retries) and pages a readable 503, never a 500 and never a 2xx for something not stored.

Against real parts: gunicorn with two workers; PostgreSQL backends terminated with
pg_terminate_backend (on a throwaway PostgreSQL database when the test run uses SQLite); on
PostgreSQL, a TCP relay the test cuts; on SQLite, a write lock held by another connection past the
webhook's wait.
"""

import json
import sqlite3
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from attempts.models import Attempt, WebhookEvent
from dashboard.tests.test_cache_down import (
    FAULT_SECONDS,
    INTERVAL,
    LIST,
    WORKERS,
    operator_cookie,
    pending_attempts,
    wait_until,
)
from fakeseam import API_KEY, free_port
from pages.templatetags.attempt_tags import version
from seam.webhooks import WRITE_WAIT_SECONDS
from testing.faults import Relay, silent_server
from testing.proxy import CountingProxy
from testing.servers import Gunicorn, manage, test_database_url, throwaway_postgres
from testing.webhooks import SECRET, seam_event, signed_headers

pytestmark = [pytest.mark.gunicorn]

POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
PAGES = ["/attempts/", "/attempts/poll/?v=999999.1", "/events/", "/attempts/export.csv"]
PAGES += ["/events/export.csv", "/attempts/aa_1/", "/accounts/login/"]
# With the database up: an attempt never recorded (and no Seam key) is a 404, and a poll with
# nothing pending in view goes on polling (new attempts may still arrive).
ANSWERS = {"/attempts/aa_1/": 404}
UNAVAILABLE = "The database is unavailable"
# operator_cookie() run by a process whose database is another one.
LOGIN = "from dashboard.tests.test_cache_down import operator_cookie; print(operator_cookie())"


def deliver(server: Gunicorn, body: bytes) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{server.url}/webhooks/seam/", content=body, headers=signed_headers(body), timeout=30
    )
    return response, time.monotonic() - started


def timed_pages(http: httpx.Client) -> list[tuple[str, httpx.Response, float]]:
    answers = []
    for path in PAGES:
        started = time.monotonic()
        response = http.get(path)
        answers.append((path, response, time.monotonic() - started))
    return answers


def figures(seconds: list[float]) -> dict[str, float]:
    return {"requests": len(seconds), "p50": statistics.median(seconds), "max": max(seconds)}


@pytest.fixture
def postgres() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database for gunicorn, and a logged-in operator's session cookie there: the
    test database on PostgreSQL, else a throwaway one on the local PostgreSQL server."""
    if POSTGRES:
        yield test_database_url(), operator_cookie()
        return
    with throwaway_postgres() as url:
        cookie = manage("shell", "-v0", "-c", LOGIN, env={"DATABASE_URL": url}).strip()
        yield url, cookie


@contextmanager
def cursor_on(url: str) -> Iterator:
    """A cursor on the database at `url`; on the test database, the test's own connection."""
    if url == test_database_url():
        with connection.cursor() as cursor:
            yield cursor
    else:
        with psycopg.connect(url, autocommit=True) as other, other.cursor() as cursor:
            yield cursor


def backends(url: str) -> int:
    """The other connections to the database."""
    with cursor_on(url) as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def terminate_backends(url: str) -> int:
    """Ends every other connection to the database, as a PostgreSQL restart would."""
    with cursor_on(url) as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return sum(1 for (ended,) in cursor.fetchall() if ended)


def webhook_events(url: str) -> int:
    with cursor_on(url) as cursor:
        cursor.execute("SELECT count(*) FROM attempts_webhookevent")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_replaces_connections_terminated_under_it(postgres, record_property):
    url, cookie = postgres
    env = {"DATABASE_URL": url, "SEAM_WEBHOOK_SECRET": SECRET}
    with Gunicorn(env=env, workers=2) as server:
        http = httpx.Client(
            base_url=server.url, cookies={settings.SESSION_COOKIE_NAME: cookie}, timeout=30
        )

        def both_workers_connected() -> bool:
            # Each worker keeps its connection (CONN_MAX_AGE); the kernel picks who serves.
            assert http.get("/attempts/").status_code == 200
            return backends(url) >= 2

        wait_until(both_workers_connected, 30, "a connection kept by each worker")
        terminated = terminate_backends(url)
        after = timed_pages(http)
        webhook, _ = deliver(server, json.dumps(seam_event()).encode())
        output = server.output()

    record_property("pg_terminated", figures([seconds for _, _, seconds in after]))
    assert terminated >= 2
    # The first request after it in each worker finds its connection dead and opens another.
    assert [(path, r.status_code) for path, r, _ in after] == [
        (path, ANSWERS.get(path, 200)) for path in PAGES
    ]
    assert webhook.status_code == 200 and webhook.json()["recorded"] is True
    assert webhook_events(url) == 1
    assert "Traceback" not in output, output[-3000:]


@contextmanager
def database_fault(server_env: dict[str, str]) -> Iterator[tuple[dict[str, str], object]]:
    """What makes the database unable to record a webhook: on PostgreSQL, a relay in front of
    it that the test cuts; on SQLite, another connection holding the write lock."""
    if POSTGRES:
        db = connection.settings_dict
        with Relay(int(db.get("PORT") or 5432)) as relay:
            url = test_database_url().replace(f":{db.get('PORT') or 5432}/", f":{relay.port}/")
            yield {**server_env, "DATABASE_URL": url}, relay
        return
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)

    class WriteLock:
        def cut(self) -> None:
            holder.execute("BEGIN IMMEDIATE")

        def restore(self) -> None:
            holder.execute("ROLLBACK")

    try:
        yield server_env, WriteLock()
    finally:
        holder.close()


def live_requests(http: httpx.Client, attempt: Attempt, seconds: float) -> list:
    """A pending attempt's page and the list's poll, as open pages ask for them."""
    answers = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for path, params in (
            (f"/attempts/{attempt.action_attempt_id}/", {}),
            ("/attempts/poll/", {"v": f"{attempt.pk}.{version(attempt)}"}),
        ):
            started = time.monotonic()
            response = http.get(path, params=params, headers={"HX-Request": "true"})
            answers.append((path, response, time.monotonic() - started))
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.seam
def test_a_webhook_the_database_cannot_record_answers_503_with_retry_after(
    fake_seam, record_property
):
    (attempt,) = pending_attempts(fake_seam, 1)
    cookie = operator_cookie()
    body = json.dumps(seam_event()).encode()
    with (
        CountingProxy(fake_seam.url) as proxy,
        database_fault(
            {
                "SEAM_WEBHOOK_SECRET": SECRET,
                "SEAM_API_KEY": API_KEY,
                "SEAM_API_URL": proxy.url,
                "SEAM_POLL_SECONDS": str(INTERVAL),
            }
        ) as (env, fault),
    ):
        with Gunicorn(env=env, workers=WORKERS) as server:
            http = httpx.Client(
                base_url=server.url, cookies={settings.SESSION_COOKIE_NAME: cookie}, timeout=30
            )
            assert http.get("/attempts/").status_code == 200

            fault.cut()
            proxy.reset()
            refused, refused_seconds = deliver(server, body)
            pages = timed_pages(http)
            live = live_requests(http, attempt, FAULT_SECONDS)
            started = time.monotonic()
            readyz = httpx.get(f"{server.url}/readyz", timeout=30)
            readyz_seconds = time.monotonic() - started
            seam_calls = len(proxy.calls_to(LIST))
            stored_during = WebhookEvent.objects.count()
            fault.restore()

            wait_until(lambda: http.get("/attempts/").status_code == 200, 20, "pages back")
            recorded, _ = deliver(server, body)
            retried, _ = deliver(server, body)
            output = server.output()

    timings = figures([seconds for _, _, seconds in pages + live])
    record_property(
        "database_fault",
        {"webhook_seconds": refused_seconds, **timings, "seam_calls": seam_calls},
    )
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["error"].startswith("database unavailable")
    # Svix gives up after 15 s: the 503 comes well before.
    assert refused_seconds < WRITE_WAIT_SECONDS + 5, refused_seconds
    assert stored_during == 0
    assert seam_calls <= WORKERS * (FAULT_SECONDS / INTERVAL + 1), seam_calls
    if POSTGRES:
        for path, response, seconds in pages + live:
            assert response.status_code == 503, path
            assert UNAVAILABLE in response.text, path
            assert int(response.headers["Retry-After"]) > 0
            assert seconds < 10, (path, seconds)
        assert readyz.status_code == 503 and readyz.text.startswith("database failed")
    else:
        # Readers go on beside a held write lock (WAL): still ready, without the cache table,
        # which cannot be written beside it (and it says so at once).
        assert readyz.status_code == 200, readyz.text
        assert "database ok\nmigrations ok\ncache unavailable (" in readyz.text, readyz.text
        assert readyz_seconds < 5, readyz_seconds
        # Readers go on beside a held write lock (WAL); the cache table waits at most 1 s.
        statuses = [(path, r.status_code) for path, r, _ in pages]
        assert statuses == [(path, ANSWERS.get(path, 200)) for path in PAGES]
        assert {response.status_code for _, response, _ in live} == {200}
        assert timings["max"] < 5, timings
    assert recorded.status_code == 200 and recorded.json()["recorded"] is True
    assert retried.status_code == 200 and retried.json()["recorded"] is False
    assert WebhookEvent.objects.count() == 1
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", ["refused", "hung"])
def test_pages_and_webhooks_answer_503_while_the_database_is_unreachable(fault):
    """A PostgreSQL server that refuses connections, or accepts them and never answers (the
    connection times out after 5 s): a readable 503 page, and a webhook 503 that Svix retries."""
    with ExitStack() as stack:
        if fault == "refused":
            port, paths = free_port(), PAGES
        else:
            port, paths = stack.enter_context(silent_server()).getsockname()[1], PAGES[:1]
        env = {
            "DATABASE_URL": f"postgres://dashboard@127.0.0.1:{port}/dashboard",
            "SEAM_WEBHOOK_SECRET": SECRET,
        }
        server = stack.enter_context(Gunicorn(env=env, workers=2))
        # A session key of the right shape: loading it asks the database.
        cookies = {settings.SESSION_COOKIE_NAME: "k" * 32}
        http = httpx.Client(base_url=server.url, cookies=cookies)
        stack.callback(http.close)
        pages = [(path, http.get(path, timeout=30)) for path in paths]
        webhook, seconds = deliver(server, json.dumps(seam_event()).encode())
        output = server.output()

    for path, response in pages:
        assert response.status_code == 503, path
        assert UNAVAILABLE in response.text, path
        assert int(response.headers["Retry-After"]) > 0
    assert webhook.status_code == 503 and int(webhook.headers["Retry-After"]) > 0
    assert seconds < 10, seconds  # Svix gives up after 15 s
    assert "event=database_unavailable" in output
    assert "Traceback" not in output, output[-3000:]

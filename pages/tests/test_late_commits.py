"""Issue 20: rows that commit out of key order still reach every open page, and an id search.

PostgreSQL hands out keys before commit. As measured in the issue: webhook A (a failed
LOCK_DOOR) is held between its insert and its commit by a row lock taken from outside on its
counter, webhook B commits meanwhile with higher keys, a poll sees B; then A commits. Against
real parts: gunicorn with two workers on PostgreSQL (a throwaway database when the test run uses
SQLite), signed webhooks, the lock held by a psycopg connection of the test's own.
"""

import re
import secrets
import threading
from datetime import datetime

import httpx
import psycopg
import pytest
from django.conf import settings

from dashboard.tests.test_cache_down import wait_until
from dashboard.tests.test_database_down import postgres  # noqa: F401 - a fixture
from testing.servers import Gunicorn
from testing.webhooks import OCCURRED_AT, SECRET, deliver, seam_event

POLL = {"HX-Request": "true", "HX-Target": "poller"}


def position(html: str, since: dict[str, str]) -> dict[str, str]:
    """A page's live position (its newest row and keys in flight), as a page or a poll sets it."""
    found = dict(re.findall(r'data-live name="(newest|in_flight)" value="([^"]*)"', html))
    return {**since, **found}


class Window:
    """One open page, polling as the browser does: its query, and the position each answer
    leaves it at."""

    def __init__(self, http: httpx.Client, path: str, poll_path: str) -> None:
        self.http = http
        self.path = path
        self.poll_path = poll_path
        page = http.get(path)
        assert page.status_code == 200, page.text
        self.since = position(page.text, {})
        assert "newest" in self.since
        self.seen = page.text

    def poll(self) -> str:
        sep = "&" if "?" in self.poll_path else "?"
        response = self.http.get(
            f"{self.poll_path}{sep}{httpx.QueryParams(self.since)}", headers=POLL
        )
        assert response.status_code == 200, response.text
        self.since = position(response.text, self.since)
        self.seen += response.text
        return response.text


def lock_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()[0]


def keys(url: str, action_attempt_id: str) -> tuple[int, int]:
    """The attempt's key and its event's."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT a.id, e.id FROM attempts_attempt a JOIN attempts_webhookevent e "
            "ON e.attempt_id = a.id WHERE a.action_attempt_id = %s",
            [action_attempt_id],
        ).fetchone()


@pytest.mark.gunicorn
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lower_key_committed_after_a_poll_reaches_every_open_page(postgres):  # noqa: F811
    url, cookie = postgres
    env = {"DATABASE_URL": url, "SEAM_WEBHOOK_SECRET": SECRET}
    tag = secrets.token_hex(5)
    late, early = f"aa-{tag}-late", f"aa-{tag}-early"
    part = f"{tag}-"[2:]  # the middle of both ids
    with Gunicorn(env=env, workers=2) as server:
        http = httpx.Client(
            base_url=server.url, cookies={settings.SESSION_COOKIE_NAME: cookie}, timeout=30
        )
        # A failed LOCK_DOOR first: the counter that the late webhook will wait for.
        first = seam_event(f"evt-{tag}-0", "action_attempt.lock_door.failed", f"aa-{tag}-0")
        assert deliver(server, first).status_code == 200
        windows = [
            Window(http, f"/attempts/?q={part}", f"/attempts/poll/?q={part}"),
            Window(http, "/events/", "/events/"),
        ]
        held = seam_event(f"evt-{tag}-late", "action_attempt.lock_door.failed", late)
        answers: list[httpx.Response] = []
        with psycopg.connect(url) as holder:
            holder.execute(
                "SELECT 1 FROM attempts_hourlycount WHERE start = %s AND action_type = "
                "'LOCK_DOOR' AND status = 'error' FOR UPDATE",
                [datetime.fromisoformat(OCCURRED_AT).replace(minute=0, second=0, microsecond=0)],
            )
            thread = threading.Thread(target=lambda: answers.append(deliver(server, held)))
            thread.start()
            wait_until(lambda: lock_waiters(url) >= 1, 10, "the late webhook waiting")
            other = seam_event(f"evt-{tag}-early", "action_attempt.unlock_door.succeeded", early)
            assert deliver(server, other).status_code == 200
            # Loaded while the late one is in flight: a window that must get it too.
            windows += [
                Window(http, f"/attempts/?q={part}", f"/attempts/poll/?q={part}"),
                Window(http, "/events/", "/events/"),
            ]
            for _ in range(3):  # polls, as many as the page makes while the lock is held
                for window in windows:
                    window.poll()
            assert early in windows[0].seen and f"evt-{tag}-early" in windows[1].seen
            assert late not in windows[0].seen and f"evt-{tag}-late" not in windows[1].seen
            found = http.get(f"/attempts/?q={part}").text
            assert early in found and late not in found
            holder.rollback()
            thread.join(timeout=30)
        assert [a.status_code for a in answers] == [200]
        # The late webhook took the lower keys, and committed last.
        (late_attempt, late_event), (early_attempt, early_event) = keys(url, late), keys(url, early)
        assert late_attempt < early_attempt and late_event < early_event

        for window in windows:
            window.poll()
        for attempts, events in (windows[0:2], windows[2:4]):
            assert late in attempts.seen
            assert f"evt-{tag}-late" in events.seen
        # Each worker answers some of these: the one that searched before the commit, too.
        for _ in range(6):
            found = http.get(f"/attempts/?q={part}").text
            assert early in found and late in found

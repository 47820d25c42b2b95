"""Issue 20: scaled out. Two gunicorn instances (two workers each) behind Debian's nginx
(deploy/nginx.conf), on PostgreSQL and Redis whatever the test run uses (a throwaway database and
a Redis of the test's own): duplicate deliveries sent to both at once are recorded exactly once,
polls through both cost Seam at most one call per interval in all, `check_alerts` started on
both at once notifies once, and a browser window on each instance sees every new attempt."""

import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from playwright.sync_api import expect

from dashboard.tests.test_database_down import LOGIN
from dashboard.tests.test_nginx import Nginx, behind_nginx, https
from fakeseam import API_KEY
from testing.browser import chromium
from testing.faults import RedisServer
from testing.proxy import CountingProxy
from testing.receivers import JsonReceiver
from testing.servers import BASE_DIR, Gunicorn, manage, throwaway_postgres
from testing.webhooks import SECRET, seam_event, signed_headers

pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.nginx,
    pytest.mark.seam,
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
]

INTERVAL = 1
HTMX = {"HX-Request": "true"}


class Stack:
    """The two instances behind nginx, their database, Seam's counting proxy, the alerts'
    receiver, and a logged-in operator's session."""

    def __init__(self, url: str, nginx: Nginx, seam: CountingProxy, hook: JsonReceiver) -> None:
        self.url, self.nginx, self.seam, self.hook = url, nginx, seam, hook
        self.servers = nginx.servers
        self.cookie = manage("shell", "-v0", "-c", LOGIN, env=self.servers[0].env).strip()

    def count(self, sql: str) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql).fetchone()[0]


@pytest.fixture(scope="module")
def stack(fake_seam):
    with (
        throwaway_postgres() as url,
        RedisServer() as redis,
        CountingProxy(fake_seam.url) as seam,
        JsonReceiver() as hook,
    ):
        env = {
            "DATABASE_URL": url,
            "CACHE_URL": redis.url,
            # Each instance is also reached directly, over plain http, as a load balancer would.
            "HTTPS_ONLY": "false",
            "SEAM_API_URL": seam.url,
            "SEAM_API_KEY": API_KEY,
            "SEAM_WEBHOOK_SECRET": SECRET,
            "SEAM_POLL_SECONDS": str(INTERVAL),
            "ALERT_URLS": hook.apprise_url,
        }
        with behind_nginx(env) as nginx:
            yield Stack(url, nginx, seam, hook)


def post(server: Gunicorn, event: dict, msg_id: str) -> httpx.Response:
    body = json.dumps(event).encode()
    return httpx.post(
        f"{server.url}/webhooks/seam/",
        content=body,
        headers=signed_headers(body, msg_id),
        timeout=30,
    )


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_a_delivery_sent_to_both_instances_at_once_is_recorded_once(stack):
    events = [
        seam_event(f"evt_twice_{n}", "action_attempt.lock_door.failed", f"aa_twice_{n}")
        for n in range(30)
    ]
    for n, event in enumerate(events):
        # The same delivery reaching each instance at the same moment, as a Svix retry can.
        start = threading.Barrier(2)

        def send(server: Gunicorn, event=event, n=n, start=start) -> httpx.Response:
            start.wait()
            return post(server, event, f"msg_twice_{n}")

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(send, stack.servers))
        assert [a.status_code for a in answers] == [200, 200]
        assert sorted(a.json()["recorded"] for a in answers) == [False, True]
    recorded = "SELECT count(*) FROM attempts_webhookevent WHERE event_id LIKE 'evt_twice_%%'"
    assert stack.count(recorded) == len(events)
    attempts = "SELECT count(*) FROM attempts_attempt WHERE action_attempt_id LIKE 'aa_twice_%%'"
    assert stack.count(attempts) == len(events)


def test_polls_through_both_instances_cost_seam_one_call_an_interval(stack, fake_seam):
    pending = []
    for n in range(5):
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
        fake_seam.set_attempt(action_attempt_id, "pending")
        event = seam_event(
            f"evt_pending_{n}", "action_attempt.lock_door.started", action_attempt_id
        )
        assert (
            post(stack.servers[n % 2], {**event, "status": "pending"}, f"m_p{n}").status_code == 200
        )
        pending.append(action_attempt_id)
    with https(stack.nginx) as http:
        http.cookies.set("sessionid", stack.cookie)
        page = http.get("/attempts/", params={"status": "pending"}).text
    # What the page's poll sends: the rows in view and their versions.
    params = [("v", v) for v in re.findall(r'data-live name="v" value="([0-9.]+)"', page)]
    assert len(params) == len(pending)
    window, viewers = 6.0, 6
    stack.seam.reset()
    start = time.monotonic()
    failures: list[int] = []

    def viewer(n: int) -> None:
        tick = start + n / viewers
        with https(stack.nginx) as http:
            http.cookies.set("sessionid", stack.cookie)
            while tick < start + window:
                time.sleep(max(0.0, tick - time.monotonic()))
                response = http.get("/attempts/poll/", params=params, headers=HTMX)
                if response.status_code != 200:
                    failures.append(response.status_code)
                tick += INTERVAL

    with ThreadPoolExecutor(viewers) as pool:
        list(pool.map(viewer, range(viewers)))
    elapsed = time.monotonic() - start
    calls = stack.seam.calls_to("/action_attempts/list")
    assert failures == []
    assert 1 <= len(calls) <= elapsed / INTERVAL + 1, (len(calls), elapsed)


def test_check_alerts_on_both_instances_at_once_notifies_once(stack):
    ended = datetime.now(UTC) - timedelta(minutes=1)
    for n in range(12):
        event = seam_event(
            f"evt_alert_{n}",
            "action_attempt.unlock_door.failed",
            f"aa_alert_{n}",
            action_type="UNLOCK_DOOR",
            occurred_at=iso(ended),
        )
        assert post(stack.servers[n % 2], event, f"msg_alert_{n}").status_code == 200
    before = len(stack.hook.received)
    # Cron starts it on each instance's host in the same minute.
    command = [sys.executable, "manage.py", "check_alerts"]
    runs = [
        subprocess.Popen(command, cwd=BASE_DIR, env=server.env, stdout=subprocess.PIPE, text=True)
        for server in stack.servers
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    fired = [n for n in stack.hook.received[before:] if "UNLOCK_DOOR" in json.dumps(n)]
    assert len(fired) == 1, (outputs, stack.hook.received[before:])


def test_a_window_on_each_instance_sees_every_new_attempt(stack):
    ids = [f"aa_window_{n}" for n in range(8)]
    with chromium() as browser:
        pages = []
        for server in stack.servers:
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": stack.cookie, "url": server.url}])
            page = context.new_page()
            page.goto(f"{server.url}/attempts/?q=aa_window_")
            pages.append(page)
        for n, action_attempt_id in enumerate(ids):
            event = seam_event(
                f"evt_window_{n}", "action_attempt.lock_door.succeeded", action_attempt_id
            )
            assert post(stack.servers[n % 2], event, f"msg_window_{n}").status_code == 200
        for page in pages:
            for action_attempt_id in ids:
                expect(page.locator(f"#attempt-rows a[title='{action_attempt_id}']")).to_have_count(
                    # A bound for a loaded machine (both test passes run at once); it takes
                    # a poll or two.
                    1,
                    timeout=10 * INTERVAL * 1000 + 20_000,
                )

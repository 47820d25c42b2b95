"""Issue 11: the cache is an accelerator, not a dependency of the pages.

Against real parts: the test's own redis-server, stopped and started again; a server that accepts
connections and never answers (a hung Redis); gunicorn with two workers; Seam's fake server behind
a proxy that counts its calls.
"""

import json
import statistics
import time
from io import StringIO

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import expect

import dashboard.cache
from attempts.merge import Observation, merge
from attempts.models import Attempt, Source, WebhookEvent
from fakeseam import API_KEY
from pages.templatetags.attempt_tags import version
from testing.browser import chromium
from testing.faults import RedisServer, pending_connections, silent_server
from testing.proxy import CountingProxy
from testing.servers import Gunicorn, wait_until
from testing.webhooks import SECRET, seam_event, signed_headers

NOTICE = "live refresh paused: the cache is unavailable"
LIST = "/action_attempts/list"
INTERVAL = 1  # SEAM_POLL_SECONDS
WORKERS = 2
FAULT_SECONDS = 6


@pytest.fixture(autouse=True)
def own_health(monkeypatch):
    """Each test's caches start up, and leave the suite's cache as it was."""
    monkeypatch.setattr(dashboard.cache, "_health", {})


def faulty_cache(settings, location: str, timeout: float = 0.5) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "dashboard.cache.FailSoftCache", "LOCATION": "faulty"},
        "faulty": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
        },
    }


def log_lines(caplog, outcome: str) -> int:
    return sum(f"cache outcome={outcome}" in r.getMessage() for r in caplog.records)


class TestFailSoftCache:
    @pytest.mark.redis
    def test_it_misses_and_drops_writes_while_redis_is_down(self, settings, caplog, monkeypatch):
        monkeypatch.setattr(dashboard.cache, "RETRY_SECONDS", 0.2)
        with RedisServer() as redis:
            faulty_cache(settings, redis.url)
            cache.set("kept", 1)
            assert cache.get("kept") == 1
            redis.stop()

            assert cache.get("kept", "default") == "default"
            assert cache.get_many(["kept"]) == {}
            assert cache.add("lock", 1) is False
            cache.set("kept", 2)
            assert cache.set_many({"a": 1}) == ["a"]
            assert cache.delete("kept") is False
            with pytest.raises(ValueError):
                cache.incr("failures")
            assert cache.get_or_set("computed", lambda: 5) == 5
            assert cache.available() is False
            # Once RETRY_SECONDS have passed, the next call probes, and fails again.
            probe_due = dashboard.cache.health("faulty").retry_at
            wait_until(lambda: time.monotonic() > probe_due, 1, "due for a probe")
            assert cache.available() is False
            assert log_lines(caplog, "unavailable") == 1

            redis.start()
            wait_until(cache.available, 5, "available again")
            cache.set("kept", 3)
            assert cache.get("kept") == 3
            assert cache.add("lock", 1) is True
        assert log_lines(caplog, "unavailable") == 1
        assert log_lines(caplog, "recovered") == 1

    def test_a_hung_cache_costs_one_timeout_then_is_left_alone(self, settings):
        with silent_server() as hung:
            faulty_cache(settings, f"redis://127.0.0.1:{hung.getsockname()[1]}/0", timeout=0.5)
            started = time.monotonic()
            assert cache.get("a") is None
            first = time.monotonic() - started
            started = time.monotonic()
            for _ in range(20):
                assert cache.get_many(["a", "b"]) == {}
                assert cache.add("lock", 1) is False
                cache.set("a", 1)
            rest = time.monotonic() - started
            assert 0.4 < first < 2, first
            assert rest < 0.5, rest
            assert pending_connections(hung) == 1

    @pytest.mark.django_db
    def test_webhooks_and_logins_never_touch_the_cache(self, settings, client):
        settings.SEAM_WEBHOOK_SECRET = SECRET
        User.objects.create_user("operator", password="a long enough password")
        with silent_server() as hung:
            faulty_cache(settings, f"redis://127.0.0.1:{hung.getsockname()[1]}/0")
            body = json.dumps(seam_event()).encode()
            headers = {k: v for k, v in signed_headers(body).items() if k != "content-type"}
            webhook = client.post(
                "/webhooks/seam/", body, content_type="application/json", headers=headers
            )
            refused = client.post("/accounts/login/", {"username": "operator", "password": "wrong"})
            login = client.post(
                "/accounts/login/", {"username": "operator", "password": "a long enough password"}
            )
            assert pending_connections(hung) == 0
        assert webhook.status_code == 200 and webhook.json()["recorded"] is True
        assert WebhookEvent.objects.count() == 1
        assert refused.status_code == 200 and "did not match" in refused.text
        assert login.status_code == 302 and login.url == "/attempts/"


@pytest.mark.django_db
@pytest.mark.seam
def test_sync_attempts_catches_up_while_the_cache_is_down(settings, seam):
    """Its overlap lock lives in the cache; overlapping runs are safe, so it runs without it."""
    attempt = seam.lock_door()
    seam.set_attempt(attempt["action_attempt_id"], "success", result={"ok": True})
    merge(attempt["action_attempt_id"], Observation("pending"), source=Source.WEBHOOK)
    with silent_server() as hung:
        faulty_cache(settings, f"redis://127.0.0.1:{hung.getsockname()[1]}/0")
        out, err = StringIO(), StringIO()
        call_command("sync_attempts", stdout=out, stderr=err)
    assert "attempts_ended=1 " in out.getvalue()
    assert "running without the overlap lock" in err.getvalue()
    assert Attempt.objects.get().status == "success"


def operator_cookie() -> str:
    """A staff operator's session: the admin's audit pages are logged-in pages too."""
    client = Client()
    client.force_login(User.objects.create_user("operator", is_staff=True, is_superuser=True))
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def pending_attempts(fake_seam, count: int = 3) -> list[Attempt]:
    for _ in range(count):
        action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
        fake_seam.set_attempt(action_attempt_id, "pending")
        merge(action_attempt_id, Observation(status="pending"), source=Source.WEBHOOK)
    return list(Attempt.objects.all())


class Operator:
    """Every logged-in page, poll and export, as an operator's browser asks for them."""

    def __init__(self, server: Gunicorn, cookie: str, attempts: list[Attempt]) -> None:
        self.http = httpx.Client(
            base_url=server.url, cookies={settings.SESSION_COOKIE_NAME: cookie}, timeout=30
        )
        self.server = server
        self.attempt = attempts[0]
        self.versions = [("v", f"{a.pk}.{version(a)}") for a in attempts]
        self.delivered: list[bytes] = []

    def requests(self) -> list[tuple[str, str, dict, list]]:
        detail = f"/attempts/{self.attempt.action_attempt_id}/"
        htmx = {"HX-Request": "true"}
        return [
            ("list", "/attempts/", {}, []),
            ("list poll", "/attempts/poll/", htmx, [*self.versions, ("seam", "ok")]),
            ("detail", detail, {}, []),
            ("detail poll", detail, {**htmx, "HX-Target": "detail"}, [("v", "0")]),
            ("events", "/events/", {}, []),
            ("attempts csv", "/attempts/export.csv", {}, []),
            ("events csv", "/events/export.csv", {}, []),
            ("notice", "/cache-notice/", htmx, []),
            ("admin attempts", "/admin/attempts/attempt/", {}, []),
            ("admin events", "/admin/attempts/webhookevent/", {}, []),
        ]

    def round(self) -> list[tuple[str, int, float, str]]:
        """Each page once, and one new webhook delivery: (name, status, seconds, body)."""
        answers = []
        for name, path, headers, params in self.requests():
            started = time.monotonic()
            response = self.http.get(path, headers=headers, params=params)
            answers.append((name, response.status_code, time.monotonic() - started, response.text))
        event = seam_event(event_id=f"evt_{len(self.delivered)}", action_attempt_id="aa_hooked")
        answers.append(self.deliver(json.dumps(event).encode()))
        return answers

    def deliver(self, body: bytes) -> tuple[str, int, float, str]:
        started = time.monotonic()
        response = httpx.post(
            f"{self.server.url}/webhooks/seam/",
            content=body,
            headers=signed_headers(body, msg_id=f"msg_{len(self.delivered)}"),
            timeout=30,
        )
        if response.status_code == 200 and response.json()["recorded"]:
            self.delivered.append(body)
        return ("webhook", response.status_code, time.monotonic() - started, response.text)

    def during(self, seconds: float) -> list[tuple[str, int, float, str]]:
        answers = []
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            answers += self.round()
        return answers

    def live(self, proxy: CountingProxy) -> bool:
        """The list answers without the notice, and its polls reach Seam again."""
        page = self.http.get("/attempts/")
        notice = self.http.get("/cache-notice/", headers={"HX-Request": "true"})
        self.http.get("/attempts/poll/", params=self.versions, headers={"HX-Request": "true"})
        return NOTICE not in page.text + notice.text and bool(proxy.calls_to(LIST))


def figures(answers: list[tuple[str, int, float, str]]) -> dict[str, float]:
    seconds = [a[2] for a in answers]
    return {"requests": len(seconds), "p50": statistics.median(seconds), "max": max(seconds)}


def gunicorn_env(cache_url: str, seam_url: str) -> dict[str, str]:
    return {
        "CACHE_URL": cache_url,
        "SEAM_API_KEY": API_KEY,
        "SEAM_API_URL": seam_url,
        "SEAM_POLL_SECONDS": str(INTERVAL),
        "SEAM_WEBHOOK_SECRET": SECRET,
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
@pytest.mark.redis
@pytest.mark.seam
def test_pages_answer_from_the_database_while_redis_is_down(fake_seam, record_property):
    attempts = pending_attempts(fake_seam)
    cookie = operator_cookie()
    with RedisServer() as redis, CountingProxy(fake_seam.url) as proxy:
        env = gunicorn_env(redis.url, proxy.url)
        with Gunicorn(env=env, workers=WORKERS) as server:
            operator = Operator(server, cookie, attempts)
            wait_until(lambda: operator.live(proxy), 20, "live before the fault")

            redis.stop()
            proxy.reset()
            fault = operator.during(FAULT_SECONDS)
            seam_calls = len(proxy.calls_to(LIST))
            readyz = httpx.get(f"{server.url}/readyz", timeout=10)

            redis.start()
            proxy.reset()
            started = time.monotonic()
            wait_until(lambda: operator.live(proxy), 30, "live again after the fault")
            back_after = time.monotonic() - started
            duplicate = operator.deliver(operator.delivered[0])
            output = server.output()

    record_property("redis_down", {**figures(fault), "seam_calls": seam_calls})
    names = [request[0] for request in operator.requests()] + ["webhook"]
    assert {(name, status) for name, status, _, _ in fault} == {(name, 200) for name in names}
    pages = {name: body for name, _, _, body in fault}
    for name in ("list", "detail", "events", "notice"):
        assert NOTICE in pages[name], name
    assert figures(fault)["max"] < 5, figures(fault)
    # Live refresh paused: nobody can take the single-flight lock, so Seam is spared.
    assert seam_calls <= WORKERS * (FAULT_SECONDS / INTERVAL + 1), seam_calls
    # Every page still answers from the database: the instance stays ready, and says why.
    assert readyz.status_code == 200 and "cache unavailable (" in readyz.text, readyz.text
    assert back_after < 30
    # Every delivery recorded once, across the fault; a redelivery records nothing.
    assert len(operator.delivered) >= 1
    assert WebhookEvent.objects.count() == len(operator.delivered)
    assert duplicate[1] == 200 and json.loads(duplicate[3])["recorded"] is False
    # One line per worker when the cache went away, one when it came back.
    assert 1 <= output.count("cache outcome=unavailable") <= WORKERS, output[-3000:]
    assert 1 <= output.count("cache outcome=recovered") <= WORKERS, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
@pytest.mark.seam
def test_a_hung_redis_costs_a_request_at_most_one_socket_timeout(fake_seam, record_property):
    attempts = pending_attempts(fake_seam)
    cookie = operator_cookie()
    with silent_server() as hung, CountingProxy(fake_seam.url) as proxy:
        env = gunicorn_env(f"redis://127.0.0.1:{hung.getsockname()[1]}/0", proxy.url)
        with Gunicorn(env=env, workers=WORKERS) as server:
            operator = Operator(server, cookie, attempts)
            started = time.monotonic()
            fault = operator.during(FAULT_SECONDS)
            window = time.monotonic() - started  # the last round may run past FAULT_SECONDS
            output = server.output()
        seam_calls = len(proxy.calls_to(LIST))

    record_property("redis_hung", {**figures(fault), "seam_calls": seam_calls})
    assert {status for _, status, _, _ in fault} == {200}
    # The socket timeout is 2 s: one request in a worker waits for it, then the worker leaves
    # the cache alone for RETRY_SECONDS before one request probes it again.
    # (The in-process test above times it exactly; here the bound allows for a loaded machine.)
    slow = [(name, round(seconds, 1)) for name, _, seconds, _ in fault if seconds > 1.5]
    assert max(seconds for _, _, seconds, _ in fault) < 2 + 6, slow
    assert len(slow) <= WORKERS * (window / dashboard.cache.RETRY_SECONDS + 1), (slow, window)
    assert seam_calls <= WORKERS * (window / INTERVAL + 1)
    assert WebhookEvent.objects.count() == len(operator.delivered) >= 1
    assert NOTICE in next(body for name, _, _, body in fault if name == "list")
    assert 1 <= output.count("cache outcome=unavailable") <= WORKERS, output[-3000:]


@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
@pytest.mark.gunicorn
@pytest.mark.redis
@pytest.mark.seam
def test_the_notice_leaves_open_pages_when_redis_is_back(fake_seam):
    pending_attempts(fake_seam)
    cookie = operator_cookie()
    with RedisServer() as redis:
        env = gunicorn_env(redis.url, fake_seam.url)
        with Gunicorn(env=env, workers=WORKERS) as server, chromium() as browser:
            context = browser.new_context()
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": server.url}]
            )
            refused: list[str] = []
            context.on(
                "console",
                lambda m: "Content Security Policy" in m.text and refused.append(m.text),
            )
            redis.stop()
            # The list polls for its rows; the events page has no poll but the notice's own.
            pages = [context.new_page() for _ in range(2)]
            for page, path in zip(pages, ["/attempts/", "/events/"], strict=True):
                page.goto(f"{server.url}{path}")
                expect(page.locator("#cache-notice")).to_contain_text(NOTICE)
                page.evaluate("window.notReloaded = true")

            redis.start()
            for page in pages:
                expect(page.locator("#cache-notice")).to_have_text("", timeout=30_000)
                assert page.evaluate("window.notReloaded") is True
    assert refused == []

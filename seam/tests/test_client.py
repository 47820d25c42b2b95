import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fakeseam import API_KEY
from seam.client import (
    SeamBadResponse,
    SeamClient,
    SeamNotConfigured,
    SeamNotFound,
    SeamUnauthorized,
    SeamUnavailable,
    get_client,
)
from testing.servers import respond, serving

FAST = {"max_attempts": 3, "backoff": 0.01, "max_backoff": 0.05, "max_total": 5}


class Scripted:
    """A tiny local HTTP server answering from a script of (status, headers, body) in turn."""

    def __init__(self, script: list[tuple[int, dict[str, str], bytes]], delay: float = 0) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length) or b"{}"),
                        "at": time.monotonic(),
                    }
                )
                time.sleep(delay)  # a server slower than the client waits for
                status, headers, body = outer.script.pop(0)
                respond(self, status, body, headers)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator["Scripted"]:
        with serving(self.server):
            yield self


def ok(payload: dict) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps({**payload, "ok": True}).encode()


@pytest.fixture
def client(fake_seam):
    seam = SeamClient(fake_seam.url, API_KEY, **FAST)
    yield seam
    seam.close()


@pytest.fixture
def no_outage(fake_seam):
    yield
    fake_seam.outage([])


class TestGet:
    @pytest.mark.seam
    def test_it_gets_an_attempt(self, client, fake_seam):
        started = fake_seam.lock_door()
        fake_seam.set_attempt(
            started["action_attempt_id"], "error", error={"type": "x", "message": "jammed"}
        )
        attempt = client.get(started["action_attempt_id"])
        assert attempt["action_attempt_id"] == started["action_attempt_id"]
        assert attempt["status"] == "error"
        assert attempt["error"] == {"type": "x", "message": "jammed"}

    @pytest.mark.seam
    def test_it_raises_not_found(self, client):
        with pytest.raises(SeamNotFound) as caught:
            client.get("action_attempt_never")
        assert caught.value.error_type == "action_attempt_not_found"

    @pytest.mark.seam
    def test_it_raises_unauthorized_for_a_bad_key(self, fake_seam, caplog):
        secret = "seam_wrong_key_s3cr3t"
        seam = SeamClient(fake_seam.url, secret, **FAST)
        with caplog.at_level(logging.DEBUG), pytest.raises(SeamUnauthorized) as caught:
            seam.get("action_attempt1")
        assert "401" in str(caught.value)
        assert secret not in str(caught.value)
        assert secret not in repr(seam)
        assert secret not in caplog.text

    def test_it_sends_a_user_agent_and_bearer_auth(self):
        with Scripted([ok({"action_attempt": {"status": "pending"}})]).running() as server:
            SeamClient(server.url, "k_123", **FAST).get("a1")
        headers = {k.lower(): v for k, v in server.requests[0]["headers"].items()}
        assert headers["authorization"] == "Bearer k_123"
        assert headers["user-agent"].startswith("seam-attempts-dashboard/")
        assert server.requests[0]["body"] == {"action_attempt_id": "a1"}


class TestList:
    @pytest.mark.seam
    def test_it_lists_and_leaves_out_missing_ids(self, client, fake_seam):
        one, two = fake_seam.lock_door(), fake_seam.unlock_door()
        ids = [one["action_attempt_id"], "action_attempt_missing", two["action_attempt_id"]]
        found = client.list(ids)
        assert {a["action_attempt_id"] for a in found} == {ids[0], ids[2]}

    @pytest.mark.seam
    def test_none_found_is_an_empty_list(self, client):
        assert client.list(["action_attempt_missing"]) == []
        assert client.list([]) == []

    def test_it_batches_by_500_and_follows_pagination(self):
        ids = [f"a{i}" for i in range(501)]
        page = {"has_next_page": True, "next_page_cursor": "c2", "next_page_url": None}
        last = {"has_next_page": False, "next_page_cursor": None, "next_page_url": None}
        script = [
            ok({"action_attempts": [{"action_attempt_id": "a0"}], "pagination": page}),
            ok({"action_attempts": [{"action_attempt_id": "a1"}], "pagination": last}),
            ok({"action_attempts": [{"action_attempt_id": "a500"}]}),
        ]
        with Scripted(script).running() as server:
            found = SeamClient(server.url, "k", **FAST).list(ids)
        assert [a["action_attempt_id"] for a in found] == ["a0", "a1", "a500"]
        bodies = [r["body"] for r in server.requests]
        assert len(bodies[0]["action_attempt_ids"]) == 500
        assert bodies[1]["page_cursor"] == "c2"
        assert bodies[1]["action_attempt_ids"] == bodies[0]["action_attempt_ids"]
        assert bodies[2]["action_attempt_ids"] == ["a500"]

    @pytest.mark.seam
    def test_discovery_is_not_supported_by_the_fake(self, client):
        assert client.list_page(limit=10) is None

    def test_discovery_pages_where_the_server_supports_it(self):
        page = {"has_next_page": True, "next_page_cursor": "c2"}
        script = [ok({"action_attempts": [{"action_attempt_id": "a9"}], "pagination": page})]
        with Scripted(script).running() as server:
            found = SeamClient(server.url, "k", **FAST).list_page(limit=1)
        assert found.items == [{"action_attempt_id": "a9"}]
        assert found.next_page_cursor == "c2"
        assert server.requests[0]["body"] == {"limit": 1}


class TestEvents:
    @pytest.mark.seam
    def test_it_lists_events_since(self, client, fake_seam):
        fake_seam.lock_door()
        since = datetime.now(UTC) - timedelta(hours=1)
        events = client.list_events(since, event_types=["lock.locked"])
        assert events
        assert {e["event_type"] for e in events} == {"lock.locked"}


class TestFailures:
    @pytest.mark.seam
    def test_an_outage_is_unavailable_after_bounded_retries(self, client, fake_seam, no_outage):
        attempt = fake_seam.lock_door()
        fake_seam.outage(["/action_attempts/get", "/action_attempts/list"])
        started = time.monotonic()
        with pytest.raises(SeamUnavailable) as caught:
            client.get(attempt["action_attempt_id"])
        assert time.monotonic() - started < 2
        assert "3 times" in str(caught.value)
        with pytest.raises(SeamUnavailable):
            client.list([attempt["action_attempt_id"]])
        fake_seam.outage([])
        assert client.get(attempt["action_attempt_id"])["status"] == "success"

    def test_it_honours_retry_after_then_succeeds(self):
        script = [
            (429, {"Retry-After": "1"}, b'{"error": {"type": "rate_limited"}}'),
            ok({"action_attempt": {"action_attempt_id": "a1", "status": "success"}}),
        ]
        with Scripted(script).running() as server:
            attempt = SeamClient(server.url, "k", **FAST).get("a1")
        assert attempt["status"] == "success"
        first, second = server.requests
        assert second["at"] - first["at"] >= 0.95

    def test_a_retry_after_beyond_the_bound_gives_up_at_once(self):
        script = [(429, {"Retry-After": "3600"}, b"")]
        with Scripted(script).running() as server, pytest.raises(SeamUnavailable):
            SeamClient(server.url, "k", **FAST).get("a1")
        assert len(server.requests) == 1

    def test_a_hanging_server_is_cut_off_at_the_total_bound(self):
        with Scripted([ok({})] * 5, delay=3).running() as server:
            started = time.monotonic()
            with pytest.raises(SeamUnavailable) as caught:
                SeamClient(server.url, "k", **{**FAST, "max_total": 0.5}).get("a1")
            assert time.monotonic() - started < 1.5
        assert "Timeout" in str(caught.value)

    def test_an_unreachable_server_is_unavailable(self):
        server = Scripted([])
        url = server.url
        server.server.server_close()  # nothing listens there any more
        with pytest.raises(SeamUnavailable) as caught:
            SeamClient(url, "k", **FAST).get("a1")
        assert "ConnectError" in str(caught.value)

    @pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]", b'{"ok": true}'])
    def test_bad_json_is_a_bad_response(self, body):
        with Scripted([(200, {}, body)]).running() as server, pytest.raises(SeamBadResponse):
            SeamClient(server.url, "k", **FAST).get("a1")

    def test_the_key_is_never_in_errors_or_logs(self, caplog):
        key = "seam_live_abcdef123456"
        # A server that echoes the key back must not get it into our messages.
        script = [
            (503, {}, b""),
            (400, {}, json.dumps({"error": {"type": "x", "message": key}}).encode()),
        ]
        with caplog.at_level(logging.DEBUG), Scripted(script).running() as server:
            with pytest.raises(Exception) as caught:
                SeamClient(server.url, key, **FAST).get("a1")
        assert key not in str(caught.value)
        assert "retry" in caplog.text
        assert key not in caplog.text


class TestGetClient:
    @pytest.mark.seam
    def test_it_follows_the_settings(self, settings, fake_seam):
        settings.SEAM_API_URL = fake_seam.url
        settings.SEAM_API_KEY = API_KEY
        first = get_client()
        assert get_client() is first
        settings.SEAM_API_URL = fake_seam.url + "/"
        assert get_client() is not first

    def test_no_key_is_not_configured(self, settings):
        settings.SEAM_API_KEY = ""
        with pytest.raises(SeamNotConfigured):
            get_client()

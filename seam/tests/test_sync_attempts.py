import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import httpx
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source, StatusChange, WebhookEvent
from fakeseam import API_KEY, WORKSPACE_ID
from seam import live
from seam.ingest import record_event
from seam.management.commands.sync_attempts import LOCK_KEY
from testing.servers import serving

ERROR = {"type": "device_offline", "message": "The lock is offline"}
RESULT = {"was_confirmed_by_device": True}


def sync() -> str:
    out = StringIO()
    call_command("sync_attempts", stdout=out, stderr=StringIO())
    return out.getvalue()


def event(event_id: str, attempt: dict, outcome: str) -> dict:
    at = datetime.now(UTC).isoformat()
    return {
        "event_id": event_id,
        "event_type": f"action_attempt.{attempt['action_type'].lower()}.{outcome}",
        "action_attempt_id": attempt["action_attempt_id"],
        "action_type": attempt["action_type"],
        "status": "success" if outcome == "succeeded" else "error",
        "workspace_id": WORKSPACE_ID,
        "created_at": at,
        "occurred_at": at,
    }


def history(action_attempt_id: str) -> list[tuple[str, str, bool]]:
    changes = StatusChange.objects.filter(attempt__action_attempt_id=action_attempt_id)
    return list(changes.order_by("at", "id").values_list("from_status", "to_status", "conflict"))


@pytest.mark.django_db
class TestSyncAttempts:
    @pytest.mark.seam
    def test_it_repairs_a_webhook_outage(self, seam):
        done, failed, waiting, ended = (seam.lock_door() for _ in range(4))
        seam.set_attempt(done["action_attempt_id"], "success", result=RESULT)
        seam.set_attempt(failed["action_attempt_id"], "error", error=ERROR)
        seam.set_attempt(waiting["action_attempt_id"], "pending")
        seam.set_attempt(ended["action_attempt_id"], "error", error=ERROR)
        # The dashboard saw them start; the webhooks that said how they ended never came,
        # but for one, whose event came without its payload.
        for attempt in (done, failed, waiting):
            merge(attempt["action_attempt_id"], Observation("pending"), source=Source.WEBHOOK)
        record_event(event("evt_ended", ended, "failed"), svix_id="msg_1")

        first = sync()
        second = sync()

        attempts = {a.action_attempt_id: a for a in Attempt.objects.all()}
        got = attempts[done["action_attempt_id"]]
        assert (got.status, got.result, got.payload_fetched) == ("success", RESULT, True)
        got = attempts[failed["action_attempt_id"]]
        assert (got.status, got.error, got.action_type) == ("error", ERROR, "LOCK_DOOR")
        assert got.ended_at is not None
        assert attempts[waiting["action_attempt_id"]].status == "pending"
        got = attempts[ended["action_attempt_id"]]
        assert (got.status, got.error, got.payload_fetched) == ("error", ERROR, True)
        assert history(failed["action_attempt_id"]) == [
            ("", "pending", False),
            ("pending", "error", False),
        ]
        assert history(ended["action_attempt_id"]) == [("", "error", False)]
        assert list(WebhookEvent.objects.values_list("event_id", "svix_id")) == [
            ("evt_ended", "msg_1")
        ]
        assert "attempts_refreshed=4 " in first and "attempts_ended=2 " in first
        assert "payloads_fetched=3 " in first and "discovery=unsupported" in first
        # The second run finds only the attempt still pending, and changes nothing.
        assert "attempts_refreshed=1 " in second and "attempts_ended=0 " in second

    @pytest.mark.seam
    def test_it_records_missed_events_once_and_discovers_attempts(self, seam, settings):
        seen, missed, unknown = seam.lock_door(), seam.unlock_door(), seam.lock_door()
        seam.set_attempt(seen["action_attempt_id"], "error", error=ERROR)
        seam.set_attempt(missed["action_attempt_id"], "success", result=RESULT)
        events = [event("evt_seen", seen, "failed"), event("evt_missed", missed, "succeeded")]
        record_event(events[0], svix_id="msg_1")  # the one delivery that arrived
        newer = NewerSeam(seam.url, events, listed=[unknown["action_attempt_id"]])

        with newer.running():
            settings.SEAM_API_URL = newer.url
            first = sync()
            second = sync()

        recorded = dict(WebhookEvent.objects.values_list("event_id", "svix_id"))
        assert recorded == {"evt_seen": "msg_1", "evt_missed": ""}
        got = Attempt.objects.get(action_attempt_id=missed["action_attempt_id"])
        assert (got.status, got.result, got.payload_fetched) == ("success", RESULT, True)
        assert history(missed["action_attempt_id"]) == [("", "success", False)]
        got = Attempt.objects.get(action_attempt_id=unknown["action_attempt_id"])
        assert (got.status, got.payload_fetched) == ("success", True)
        assert "events_listed=2 events_recorded=1 events_already_recorded=1" in first
        assert "attempts_discovered=1" in first
        assert "events_recorded=0 events_already_recorded=2" in second
        assert "attempts_discovered=0" in second
        since = datetime.fromisoformat(newer.bodies["/events/list"][-1]["since"])
        assert timedelta(minutes=59) < datetime.now(UTC) - since < timedelta(minutes=61)

    @pytest.mark.seam
    def test_it_exits_non_zero_when_seam_is_down(self, seam):
        attempt = seam.lock_door()
        merge(attempt["action_attempt_id"], Observation("pending"), source=Source.WEBHOOK)
        seam.outage(["/events/list", "/action_attempts/list"])
        with pytest.raises(CommandError) as caught:
            sync()
        assert caught.value.returncode == 1
        assert "unavailable" in str(caught.value)
        assert Attempt.objects.get().status == "pending"

    @pytest.mark.seam
    def test_its_failures_and_recovery_are_what_pages_and_alerts_see(self, seam):
        seam.outage(["/events/list", "/action_attempts/list"])
        with pytest.raises(CommandError):
            sync()
        assert live.seam_state().stale
        seam.outage([])
        sync()
        assert not live.seam_state().stale

    @pytest.mark.seam
    def test_it_exits_non_zero_with_a_bad_key(self, seam, settings):
        settings.SEAM_API_KEY = "seam_wrong"
        with pytest.raises(CommandError) as caught:
            sync()
        assert "401" in str(caught.value) and "seam_wrong" not in str(caught.value)

    @pytest.mark.seam
    def test_a_second_run_at_once_does_nothing(self, seam):
        attempt = seam.lock_door()
        merge(attempt["action_attempt_id"], Observation("pending"), source=Source.WEBHOOK)
        cache.add(LOCK_KEY, True, 60)  # as a run still going would hold it
        assert "outcome=skipped" in sync()
        assert Attempt.objects.get().status == "pending"
        cache.delete(LOCK_KEY)
        assert "attempts_ended=1 " in sync()

    def test_it_needs_a_key(self, settings):
        settings.SEAM_API_KEY = ""
        with pytest.raises(CommandError, match="SEAM_API_KEY"):
            sync()


class NewerSeam:
    """Seam's fake, behind a tiny server adding what only the current API does: it lists
    `action_attempt.*` events, and attempts without ids, a page at a time."""

    def __init__(self, fake_url: str, events: list[dict], listed: list[str]) -> None:
        self.bodies: dict[str, list[dict]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.setdefault(self.path, []).append(body)
                if self.path == "/events/list":
                    self.answer(200, {"events": events, "ok": True})
                elif self.path == "/action_attempts/list" and "action_attempt_ids" not in body:
                    found = fake.post(self.path, json={"action_attempt_ids": listed}).json()
                    self.answer(200, {**found, "pagination": {"has_next_page": False}})
                else:
                    forwarded = fake.post(self.path, json=body)
                    self.answer(forwarded.status_code, forwarded.json())

            def answer(self, status: int, data: dict) -> None:
                content = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        fake = httpx.Client(base_url=fake_url, headers={"Authorization": f"Bearer {API_KEY}"})
        self.fake = fake
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator["NewerSeam"]:
        try:
            with serving(self.server):
                yield self
        finally:
            self.fake.close()
